#!/usr/bin/env bash
# Validate against the Kubernetes OpenAPI schemas (kubernetes-validate, offline, with its
# bundled schemas; `pip install kubernetes-validate`):
#   - the CustomResourceDefinitions (`hookplane-operator crd`),
#   - every object the operator builds for crds/examples (`hookplane-operator render`),
#   - the Helm chart as the real `helm template` renders it (the chart test, with
#     HOOKPLANE_TEST_HELM), for the default values and every charts/hookplane/ci/*.yaml,
# each against the two newest Kubernetes versions kubernetes-validate knows (or
# KUBERNETES_VERSIONS, space-separated).
# Custom resources themselves (Connection, Touchpoint) have no bundled schema; the test
# crds/tests/examples.rs validates them against the generated CRDs, CEL rules included.
set -euo pipefail
cd "$(dirname "$0")/../.."

VALIDATE="${KUBERNETES_VALIDATE:-kubernetes-validate}"
if ! command -v "$VALIDATE" >/dev/null; then
  echo "kubernetes-validate not found: pip install kubernetes-validate (or set KUBERNETES_VALIDATE)" >&2
  exit 1
fi
if [ -z "${HOOKPLANE_TEST_HELM:-}" ]; then
  echo "HOOKPLANE_TEST_HELM is not set: the chart is rendered by the real helm (.ci/run installs it)" >&2
  exit 1
fi
if [ -z "${KUBERNETES_VERSIONS:-}" ]; then
  # The schema folders kubernetes-validate ships (v1.37.0-local, ...): the two newest.
  python="$(dirname "$(command -v "$VALIDATE")")/python3"
  [ -x "$python" ] || python=python3
  KUBERNETES_VERSIONS="$("$python" - <<'PY'
import os, re, kubernetes_validate
root = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
found = {m.group(1) for name in os.listdir(root) if (m := re.fullmatch(r"v(\d+\.\d+\.\d+)-local", name))}
newest = sorted(found, key=lambda v: tuple(map(int, v.split("."))))[-2:]
print(" ".join(newest))
PY
)"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cargo run -q -p hookplane-operator -- crd >"$out/crds.yaml"
cargo run -q -p hookplane-operator -- render \
  --receiver-ingress --receiver-ingress-class nginx --receiver-ingress-host hooks.example.com \
  crds/examples/*.yaml >"$out/operator-objects.yaml"
cp crds/examples/secrets.yaml "$out/example-secrets.yaml"
HOOKPLANE_RENDER_CHART_TO="$out" cargo test -q -p hookplane-operator --test operator \
  chart::the_templates_render_to_kubernetes_objects >/dev/null

# Every document must be known to the schemas: an unknown kind would only warn.
status=0
for version in $KUBERNETES_VERSIONS; do
  for file in "$out"/*.yaml; do
    report="$("$VALIDATE" --strict -k "$version" "$file")" || status=1
    echo "$report"
    if grep -q '^WARN' <<<"$report"; then
      echo "$(basename "$file"): a document was not validated against $version (WARN above)" >&2
      status=1
    fi
  done
done
[ "$status" -eq 0 ] || { echo "kubernetes-validate found problems" >&2; exit 1; }
echo "validated $(cat "$out"/*.yaml | grep -c '^kind:') documents ($(ls "$out" | tr '\n' ' ')) against Kubernetes $KUBERNETES_VERSIONS"
