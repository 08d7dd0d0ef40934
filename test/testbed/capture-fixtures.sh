#!/usr/bin/env bash
# @module test/testbed/capture-fixtures.sh
# Captures raw kube-apiserver response bodies into test/fixtures/k8s/ from the running test bed, so the
# masking and parsing tests work on what a real API server returns, byte for byte.
#
# Usage: test/testbed/testbed.sh start && test/testbed/capture-fixtures.sh [out-dir]
#
# Every secret value created here is a fixture marker (fixture-...), never a real credential; the
# TokenRequest token is real but signed by the test bed's throw-away key and expires in 10 minutes.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
RUN="${TESTBED_RUN:-$REPO_ROOT/.testbed}"
OUT="${1:-$REPO_ROOT/test/fixtures/k8s}"
NS="airlock-fixtures"

log() { printf '[capture] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bash "$SCRIPT_DIR/testbed.sh" status >/dev/null 2>&1 || die "test bed not running: run test/testbed/testbed.sh start"
env_value() { sed -n "s/^$1=//p" "$RUN/env"; }
SERVER="$(env_value TESTBED_SERVER)"
CA="$(env_value TESTBED_CA_FILE)"
KUBECONFIG_FILE="$(env_value TESTBED_KUBECONFIG)"
TOKEN_FILE="$RUN/pki/admin-token"

# curl with the admin token read from a file (never on the command line, where `ps` would show it).
AUTH_HEADER_FILE="$(mktemp)"
trap 'rm -f "$AUTH_HEADER_FILE"' EXIT
printf 'Authorization: Bearer %s\n' "$(cat "$TOKEN_FILE")" > "$AUTH_HEADER_FILE"
# kube-apiserver pretty-prints JSON for user agents starting with curl/wget; present as kubectl so the bodies
# are the compact ones kubectl and client-go really receive.
USER_AGENT="kubectl/v1.32.13 (linux/amd64) kubernetes/airlock-fixtures"
api() { curl -sS --fail-with-body -A "$USER_AGENT" --cacert "$CA" -H "@$AUTH_HEADER_FILE" "$@"; }
k() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------------------
k get namespace "$NS" >/dev/null 2>&1 || k create namespace "$NS" >/dev/null
# Recreate for a clean resourceVersion history (no controllers run, so nothing else touches them).
k -n "$NS" delete secret,configmap,deployment,serviceaccount --all --ignore-not-found --wait=false >/dev/null

# 1. A Secret created imperatively (no last-applied annotation).
k -n "$NS" create secret generic db-credentials \
  --from-literal=username=fixture-db-user \
  --from-literal=password=fixture-db-password-1 >/dev/null

# 2. A Secret applied client-side: kubectl copies the whole manifest, stringData in clear text included,
#    into the kubectl.kubernetes.io/last-applied-configuration annotation.
k -n "$NS" apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: api-key
  labels: { app: web }
type: Opaque
stringData:
  api-token: fixture-applied-api-token
data:
  signing-key: Zml4dHVyZS1hcHBsaWVkLXNpZ25pbmcta2V5   # fixture-applied-signing-key
YAML

# 3. A Helm release Secret: data.release = base64(base64(gzip(release JSON))), chart values included.
RELEASE_JSON='{"name":"myapp","namespace":"airlock-fixtures","version":1,"info":{"status":"deployed","description":"Install complete"},"chart":{"metadata":{"name":"myapp","version":"0.1.0","apiVersion":"v2"},"values":{"db":{"password":"fixture-helm-chart-default-password"}}},"config":{"db":{"password":"fixture-helm-values-password"}},"manifest":"---\n# Source: myapp/templates/secret.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: myapp-db\nstringData:\n  password: fixture-helm-manifest-password\n"}'
RELEASE_B64="$(printf '%s' "$RELEASE_JSON" | gzip -9 -c -n | base64 -w0)"
k -n "$NS" create secret generic sh.helm.release.v1.myapp.v1 --type=helm.sh/release.v1 \
  --from-literal=release="$RELEASE_B64" >/dev/null
k -n "$NS" label secret sh.helm.release.v1.myapp.v1 owner=helm name=myapp status=deployed version=1 >/dev/null

# 4. A ConfigMap (not secret by type, but people put secrets in them).
k -n "$NS" create configmap app-config \
  --from-literal=LOG_LEVEL=info \
  --from-literal=DATABASE_URL=postgres://app:fixture-configmap-password@db:5432/app >/dev/null

# 5. A Deployment with literal env values (and one secretKeyRef, which is only a reference).
k -n "$NS" apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: { app: web }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: registry.example/web:1.0
          env:
            - { name: LOG_LEVEL, value: debug }
            - { name: DATABASE_PASSWORD, value: fixture-env-literal-password }
            - name: API_TOKEN
              valueFrom: { secretKeyRef: { name: api-key, key: api-token } }
YAML

# 6. A ServiceAccount for the TokenRequest capture.
k -n "$NS" create serviceaccount agent >/dev/null

# ---------------------------------------------------------------------------------------------------------
# Captures (raw bodies as served; JSON Accept unless stated)
# ---------------------------------------------------------------------------------------------------------
JSON='Accept: application/json'
BASE="$SERVER/api/v1/namespaces/$NS"

api -H "$JSON" "$BASE/secrets/db-credentials" > "$OUT/secret.json"
api -H "$JSON" "$BASE/secrets/api-key" > "$OUT/secret-applied.json"
api -H "$JSON" "$BASE/secrets/sh.helm.release.v1.myapp.v1" > "$OUT/secret-helm-release.json"
api -H "$JSON" "$BASE/secrets" > "$OUT/secret-list.json"
api -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io' "$BASE/secrets?includeObject=Object" > "$OUT/table-secrets-includeObject.json"
api -H "$JSON" "$BASE/configmaps/app-config" > "$OUT/configmap.json"
api -H "$JSON" "$SERVER/apis/apps/v1/namespaces/$NS/deployments/web" > "$OUT/deployment.json"
api -H "$JSON" -H 'Content-Type: application/json' -X POST "$BASE/serviceaccounts/agent/token" \
  -d '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["https://kubernetes.default.svc"],"expirationSeconds":600}}' \
  > "$OUT/tokenrequest.json"

# Watch: start at the list's resourceVersion (so only new events arrive), then create, update and delete a
# Secret while the 2-second watch is open. curl -N writes each chunk as it arrives.
# The list's own metadata comes first in the body, before any item's resourceVersion.
RV="$(api -H "$JSON" "$BASE/secrets?limit=1" | grep -o '"resourceVersion":"[0-9]*"' | head -1 | tr -dc '0-9')"
[ -n "$RV" ] || die "could not read the secret list resourceVersion"
api -N -H "$JSON" "$BASE/secrets?watch=1&timeoutSeconds=2&resourceVersion=$RV" > "$OUT/watch-secrets.jsonl" &
WATCH_PID=$!
sleep 0.3
api -H "$JSON" -H 'Content-Type: application/json' -X POST "$BASE/secrets" \
  -d '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"watched"},"type":"Opaque","data":{"password":"Zml4dHVyZS13YXRjaC1wYXNzd29yZC0x"}}' >/dev/null
api -H "$JSON" -H 'Content-Type: application/merge-patch+json' -X PATCH "$BASE/secrets/watched" \
  -d '{"data":{"password":"Zml4dHVyZS13YXRjaC1wYXNzd29yZC0y"}}' >/dev/null
api -H "$JSON" -X DELETE "$BASE/secrets/watched" >/dev/null
wait "$WATCH_PID"

events="$(wc -l < "$OUT/watch-secrets.jsonl")"
[ "$events" -eq 3 ] || die "expected 3 watch events (ADDED, MODIFIED, DELETED), got $events"
grep -q '"kubectl.kubernetes.io/last-applied-configuration"' "$OUT/secret-applied.json" || die "applied secret lacks the last-applied annotation"
grep -q '"kind":"Table"' "$OUT/table-secrets-includeObject.json" || die "Table capture is not a Table"

version="$(api -H "$JSON" "$SERVER/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
log "captured $(ls "$OUT"/*.json "$OUT"/*.jsonl | wc -l) fixtures from kube-apiserver $version into $OUT"
