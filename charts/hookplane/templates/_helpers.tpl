{{/*
An image reference: repository@digest when a digest is given, else repository:tag (the tag
defaulting to the chart's appVersion). Quoted, so a tag such as "1.10" stays text.
*/}}
{{- define "hookplane.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest | quote -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .appVersion | toString) | quote -}}
{{- end -}}
{{- end -}}
