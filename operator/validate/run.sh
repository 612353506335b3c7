#!/usr/bin/env bash
# Validate against the Kubernetes OpenAPI schemas (kubernetes-validate, offline, with its
# bundled schemas; `pip install kubernetes-validate`):
#   - the CustomResourceDefinitions (`hookplane-operator crd`),
#   - every object the operator builds for crds/examples (`hookplane-operator render`),
#   - the Helm chart as rendered by the chart test (no helm binary is needed).
# Custom resources themselves (Connection, Touchpoint) have no bundled schema; the test
# crds/tests/examples.rs validates them against the generated CRDs, CEL rules included.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.34.0}"
VALIDATE="${KUBERNETES_VALIDATE:-kubernetes-validate}"
if ! command -v "$VALIDATE" >/dev/null; then
  echo "kubernetes-validate not found: pip install kubernetes-validate (or set KUBERNETES_VALIDATE)" >&2
  exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cargo run -q -p hookplane-operator -- crd >"$out/crds.yaml"
cargo run -q -p hookplane-operator -- render crds/examples/*.yaml >"$out/operator-objects.yaml"
cp crds/examples/secrets.yaml "$out/example-secrets.yaml"
HOOKPLANE_RENDER_CHART_TO="$out" cargo test -q -p hookplane-operator --test operator \
  chart::the_templates_render_to_kubernetes_objects >/dev/null

# Every document must be known to the schemas: an unknown kind would only warn.
status=0
for file in "$out"/*.yaml; do
  report="$("$VALIDATE" --strict -k "$KUBERNETES_VERSION" "$file")" || status=1
  echo "$report"
  if grep -q '^WARN' <<<"$report"; then
    echo "$(basename "$file"): a document was not validated (WARN above)" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] || { echo "kubernetes-validate found problems" >&2; exit 1; }
echo "validated $(cat "$out"/*.yaml | grep -c '^kind:') documents against Kubernetes $KUBERNETES_VERSION"
