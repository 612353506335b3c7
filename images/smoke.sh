#!/usr/bin/env bash
# Run the images built by build.sh and check them from outside:
#  - hookplane: `serve` answers /readyz, the portal, and takes a webhook (200, stored);
#  - hookplane-operator: prints its CRDs;
#  - both run as the non-root user and hold no shell.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/images/containers.conf"
pm() { podman --storage-driver=vfs "$@"; }
fail() { echo "smoke: $*" >&2; exit 1; }

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
name="hookplane-smoke-$$"
pm run -d --name "$name" --network host localhost/hookplane:dev serve --listen "127.0.0.1:$port" >/dev/null
trap 'pm logs "$name" >&2 2>&1 | tail -20 || true; pm rm -f "$name" >/dev/null 2>&1 || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null || fail "/readyz does not answer"
curl -fsS "$base/" | grep -q '/assets/portal/app.js' || fail "the portal is not served"

token="$(pm logs "$name" 2>&1 | sed -n 's/.*Owner token (shown once, keep it): \(hpt_[A-Za-z0-9_-]*\).*/\1/p' | head -1)"
[ -n "$token" ] || fail "no owner token in the log"
gql() {
  curl -fsS "$base/graphql" -H 'content-type: application/json' -H "authorization: Bearer $token" -d "$1"
}
gql '{"query":"mutation { registerUrl(input: {organization: \"acme\", url: \"https://hooks.example.com\"}) { id } }"}' >/dev/null
conn="$(gql '{"query":"mutation { createConnection(input: {name: \"Smoke\", sourceApp: \"generic\", destinationApp: \"generic\"}) { id } }"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["createConnection"]["id"])')"
tp="$(gql '{"query":"mutation($i: CreateTouchpointInput!) { createTouchpoint(input: $i) { id } }", "variables": {"i": {"connectionId": "'"$conn"'", "name": "Smoke", "source": {"endpoint": "smoke", "verification": {"scheme": "none"}}, "destination": {"url": "http://127.0.0.1:9/nowhere"}}}}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["createTouchpoint"]["id"])')"
gql '{"query":"mutation { publishTouchpoint(id: \"'"$tp"'\") { publishedGeneration } }"}' >/dev/null
status="$(curl -sS -o /dev/null -w '%{http_code}' "$base/hooks/acme/smoke" -H 'content-type: application/json' -d '{"id": 1}')"
[ "$status" = 200 ] || fail "the webhook was answered $status"
stored="$(gql '{"query":"{ resyncBucket(touchpointId: \"'"$tp"'\") { edges { node { status } } } }"}' \
  | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["data"]["resyncBucket"]["edges"]))')"
[ "$stored" = 1 ] || fail "the webhook was not stored ($stored entries)"
echo "smoke: hookplane serve in the image answers /readyz and the portal, and took a webhook"
pm rm -f "$name" >/dev/null
trap - EXIT

crds="$(pm run --rm localhost/hookplane-operator:dev crd | grep -c '^kind: CustomResourceDefinition')"
[ "$crds" = 2 ] || fail "the operator image printed $crds CRDs"
echo "smoke: the operator image prints its 2 CRDs"

for image in hookplane hookplane-operator; do
  user="$(pm image inspect --format '{{.Config.User}}' "localhost/$image:dev")"
  [ "$user" = "65532:65532" ] || fail "$image runs as '$user'"
  if pm run --rm --entrypoint /bin/sh "localhost/$image:dev" -c true >/dev/null 2>&1; then
    fail "$image has a shell"
  fi
done
echo "smoke: both run as 65532 and hold no shell"
