#!/usr/bin/env bash
# @module test/testbed/testbed.sh
# A real kube-apiserver + etcd on loopback for the end-to-end tests, built from the Go module proxy and cached.
#
# Usage: test/testbed/testbed.sh build|start|stop|restart|env|status
#
#   build    build kube-apiserver and etcd into ${XDG_CACHE_HOME:-$HOME/.cache}/airlock-testbed/<version>/
#            (cold: minutes; warm: seconds, the cached binaries are reused)
#   start    build if needed, create a throw-away PKI + admin token, start etcd and kube-apiserver on
#            127.0.0.1, wait for /readyz, write <run>/kubeconfig and <run>/env
#   stop     stop the processes this script started (by the pids it recorded; nothing else)
#   env      print shell exports for the running test bed (eval "$(testbed.sh env)")
#   status   say whether our processes are alive and the API server is ready (exit 0 only if ready)
#
# Environment (all optional):
#   TESTBED_K8S_VERSION      k8s.io/kubernetes tag served by the proxy, default 1.36.3
#   TESTBED_ETCD_VERSION     etcd version; default: the one that Kubernetes release pins
#   TESTBED_CACHE            cache root, default ${XDG_CACHE_HOME:-$HOME/.cache}/airlock-testbed
#   TESTBED_RUN              run dir (pki, data, logs, pids, kubeconfig, env), default <repo>/.testbed
#   TESTBED_API_PORT         kube-apiserver secure port, default 36443
#   TESTBED_ETCD_PORT        etcd client port, default 36379
#   TESTBED_ETCD_PEER_PORT   etcd peer port, default 36380
#   TESTBED_READY_TIMEOUT_S  seconds to wait for /readyz, default 120
#
# Why build from source: no package registry here ships kube-apiserver, and `go install
# k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused because that module's go.mod replaces every staging
# module (k8s.io/api, k8s.io/apiserver, ...) with ./staging at v0.0.0. A throw-away consumer module that
# requires k8s.io/kubernetes and replaces each staging module with its published v0.<minor>.<patch> tag
# builds fine. etcd has the same problem and the same cure.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

K8S_VERSION="${TESTBED_K8S_VERSION:-1.36.3}"
K8S_VERSION="${K8S_VERSION#v}"
CACHE_ROOT="${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-testbed}"
BIN="$CACHE_ROOT/$K8S_VERSION"
SRC="$CACHE_ROOT/src"
RUN="${TESTBED_RUN:-$REPO_ROOT/.testbed}"
API_PORT="${TESTBED_API_PORT:-36443}"
ETCD_PORT="${TESTBED_ETCD_PORT:-36379}"
ETCD_PEER_PORT="${TESTBED_ETCD_PEER_PORT:-36380}"
READY_TIMEOUT_S="${TESTBED_READY_TIMEOUT_S:-120}"

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A reproducible Go environment: modules on, no workspace, no cgo (static binaries), never switch toolchains
# behind our back (Go 1.26 covers k8s 1.32-1.37; a newer requirement should fail loudly, not download).
go_env() {
  export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local
}

# ---------------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------------

# Creates (or reuses) the consumer module that pins k8s.io/kubernetes and the published staging modules.
prepare_kube_module() {
  local mod="$SRC/kube-apiserver-v$K8S_VERSION"
  if [ -f "$mod/.resolved" ]; then printf '%s\n' "$mod"; return 0; fi
  rm -rf "$mod"; mkdir -p "$mod"
  (
    cd "$mod"
    go mod init testbed.local/kube-apiserver >/dev/null 2>&1
    # k8s.io/kubernetes's own go.mod, through the proxy: it names the staging modules and the godebug default.
    local kmod
    kmod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [ -f "$kmod" ] || die "k8s.io/kubernetes@v$K8S_VERSION: go.mod not found through the module proxy"
    local mods
    mods="$( { sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) v0\.0\.0$#\1#p' "$kmod"
               sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$kmod"; } | sort -u )"
    [ -n "$mods" ] || die "no staging modules parsed from $kmod"
    local staging="v0.${K8S_VERSION#*.}" args=() m
    for m in $mods; do args+=("-replace=$m=$m@$staging"); done
    go mod edit "${args[@]}"
    local gd
    while read -r gd; do [ -z "$gd" ] || go mod edit "-godebug=$gd"; done \
      < <(sed -n 's/^godebug[[:space:]]\{1,\}\([^[:space:]]*=[^[:space:]]*\)[[:space:]]*$/\1/p' "$kmod")
    log "resolving k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION ($(wc -w <<<"$mods") staging modules at $staging)"
    # No `go mod tidy`: it would try to resolve test-only imports of the whole k8s tree.
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" >&2
    touch .resolved
  ) || return 1
  printf '%s\n' "$mod"
}

build_kube_apiserver() {
  [ -x "$BIN/kube-apiserver" ] && [ -s "$BIN/etcd-version" ] && return 0
  local mod; mod="$(prepare_kube_module)"
  mkdir -p "$BIN"
  local minor; minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
  local ld="-s -w" p now; now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # Without these stamps /version reports v0.0.0-master, and kubectl warns about version skew.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$now"
  done
  log "building kube-apiserver v$K8S_VERSION (cold: several minutes)"
  ( cd "$mod" && go build -p 2 -trimpath -ldflags "$ld" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver )
  ( cd "$mod" && go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3 ) > "$BIN/etcd-version.tmp"
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  mv "$BIN/etcd-version.tmp" "$BIN/etcd-version"
}

build_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  local ver="${TESTBED_ETCD_VERSION:-$(cat "$BIN/etcd-version")}"
  local mod="$SRC/etcd-$ver"
  rm -rf "$mod"; mkdir -p "$mod" "$BIN"
  log "building etcd $ver (the version k8s v$K8S_VERSION pins)"
  (
    cd "$mod"
    go mod init testbed.local/etcd >/dev/null 2>&1
    # go.etcd.io/etcd/server/v3's root package is `main` (the etcd binary).
    go get "go.etcd.io/etcd/server/v3@$ver" >&2
    go build -p 2 -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

cmd_build() {
  command -v go >/dev/null || die "go is required to build the test bed"
  go_env
  mkdir -p "$CACHE_ROOT"
  # One build at a time per cache (parallel test runs would otherwise race on the same module dirs).
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
  local t0=$SECONDS
  build_kube_apiserver
  build_etcd
  "$BIN/kube-apiserver" --version >&2
  "$BIN/etcd" --version 2>&1 | head -1 >&2
  log "build ok in $((SECONDS - t0))s: $BIN"
  flock -u 9
}

# ---------------------------------------------------------------------------------------------------
# start / stop / status / env
# ---------------------------------------------------------------------------------------------------

pid_alive() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# A throw-away PKI per start: CA, API serving cert (SAN 127.0.0.1/localhost), service-account key pair,
# and a random admin bearer token in the static token file (group system:masters bypasses RBAC).
make_pki() {
  local d="$RUN/pki"
  rm -rf "$d"; mkdir -p "$d"; chmod 700 "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=airlock-testbed-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf '%s\n' \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" > "$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  local token; token="testbed-$(openssl rand -hex 24)"
  printf '%s,testbed-admin,testbed-admin-uid,"system:masters"\n' "$token" > "$d/tokens.csv"
  printf '%s' "$token" > "$d/admin-token"
  chmod 600 "$d"/*
  chmod 644 "$d/ca.crt"   # public; clients running as other users may need it
}

write_client_files() {
  local token; token="$(cat "$RUN/pki/admin-token")"
  umask 077
  cat >"$RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: airlock-testbed
  cluster:
    server: "https://127.0.0.1:$API_PORT"
    certificate-authority: "$RUN/pki/ca.crt"
users:
- name: testbed-admin
  user:
    token: "$token"
contexts:
- name: airlock-testbed
  context: {cluster: airlock-testbed, user: testbed-admin, namespace: default}
current-context: airlock-testbed
KC
  # Plain KEY=VALUE lines (no quoting, no spaces in values) so test/testbed/testbed.ts can read them.
  cat >"$RUN/env" <<ENV
TESTBED_K8S_VERSION=$K8S_VERSION
TESTBED_SERVER=https://127.0.0.1:$API_PORT
TESTBED_KUBECONFIG=$RUN/kubeconfig
TESTBED_CA_FILE=$RUN/pki/ca.crt
TESTBED_ADMIN_TOKEN=$token
TESTBED_ETCD_URL=http://127.0.0.1:$ETCD_PORT
TESTBED_BIN=$BIN
ENV
}

wait_ready() {
  local token; token="$(cat "$RUN/pki/admin-token")"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -fsS --max-time 3 --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $token" \
         "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
      return 0
    fi
    pid_alive kube-apiserver || { log "kube-apiserver exited; last log lines:"; tail -40 "$RUN/logs/kube-apiserver.log" >&2; return 1; }
    pid_alive etcd || { log "etcd exited; last log lines:"; tail -40 "$RUN/logs/etcd.log" >&2; return 1; }
    sleep 0.5
  done
  log "kube-apiserver not ready after ${READY_TIMEOUT_S}s; last log lines:"; tail -40 "$RUN/logs/kube-apiserver.log" >&2
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
  if pid_alive kube-apiserver && pid_alive etcd && cmd_status >/dev/null 2>&1; then
    log "already running"; cmd_env; return 0
  fi
  cmd_stop >/dev/null 2>&1 || true
  ( cmd_build )
  command -v openssl >/dev/null || die "openssl is required"
  command -v curl >/dev/null || die "curl is required"
  local p
  for p in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
    port_free "$p" || die "port 127.0.0.1:$p is in use (override with TESTBED_API_PORT / TESTBED_ETCD_PORT / TESTBED_ETCD_PEER_PORT)"
  done
  mkdir -p "$RUN/logs"
  rm -rf "$RUN/etcd-data" "$RUN/env" "$RUN/kubeconfig"
  make_pki
  # setsid: each server leads its own process group, so a Ctrl-C in the caller's terminal does not
  # kill it half-way and `stop` can still signal exactly the pid it recorded.
  setsid "$BIN/etcd" --name airlock-testbed --data-dir "$RUN/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "airlock-testbed=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" \
    --unsafe-no-fsync --log-level warn </dev/null >"$RUN/logs/etcd.log" 2>&1 &
  echo $! >"$RUN/etcd.pid"
  setsid "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
    --tls-cert-file="$RUN/pki/apiserver.crt" --tls-private-key-file="$RUN/pki/apiserver.key" \
    --client-ca-file="$RUN/pki/ca.crt" --token-auth-file="$RUN/pki/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount --allow-privileged=true \
    --profiling=false --v=1 </dev/null >"$RUN/logs/kube-apiserver.log" 2>&1 &
  echo $! >"$RUN/kube-apiserver.pid"
  local t0=$SECONDS
  if ! wait_ready; then cmd_stop; die "start failed"; fi
  write_client_files
  log "ready in $((SECONDS - t0))s: https://127.0.0.1:$API_PORT (kubeconfig $RUN/kubeconfig)"
  cmd_env
}

# Stops only the processes whose pids this script recorded, and only if they still run our binaries
# (a recycled pid must never be signalled).
cmd_stop() {
  local name pid
  for name in kube-apiserver etcd; do
    [ -f "$RUN/$name.pid" ] || continue
    pid="$(cat "$RUN/$name.pid")"
    local exe; exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    # "$BIN/$name (deleted)" when the binary was rebuilt while it ran: still ours.
    if kill -0 "$pid" 2>/dev/null && { [ "$exe" = "$BIN/$name" ] || [ "$exe" = "$BIN/$name (deleted)" ]; }; then
      kill -TERM "$pid" 2>/dev/null || true
      local i
      for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
      log "stopped $name ($pid)"
    fi
    rm -f "$RUN/$name.pid"
  done
  rm -f "$RUN/env"
}

cmd_status() {
  local name ok=0
  for name in etcd kube-apiserver; do
    if pid_alive "$name"; then log "$name: running (pid $(cat "$RUN/$name.pid"))"; else log "$name: not running"; ok=1; fi
  done
  [ "$ok" -eq 0 ] || return 1
  [ -f "$RUN/env" ] || { log "no $RUN/env (start did not finish)"; return 1; }
  local token; token="$(cat "$RUN/pki/admin-token")"
  if curl -fsS --max-time 3 --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $token" \
       "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    log "kube-apiserver: ready at https://127.0.0.1:$API_PORT"
  else
    log "kube-apiserver: not ready"; return 1
  fi
}

# Prints exports for a shell. The admin token itself is left out (it would end up in CI logs); its file is named.
cmd_env() {
  [ -f "$RUN/env" ] || die "test bed not started (no $RUN/env)"
  printf 'export KUBECONFIG=%s\n' "$RUN/kubeconfig"
  grep -v '^TESTBED_ADMIN_TOKEN=' "$RUN/env" | sed -n 's/^\(TESTBED_[A-Z0-9_]*\)=\(.*\)$/export \1=\2/p'
  printf 'export TESTBED_ADMIN_TOKEN_FILE=%s\n' "$RUN/pki/admin-token"
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 build|start|stop|restart|env|status" >&2; exit 2 ;;
esac
