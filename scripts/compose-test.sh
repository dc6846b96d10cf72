#!/bin/bash
# compose-test.sh - docker-compose.yml run for real, as a user would: build the images,
# start the stack, check it, and remove everything the run made. CI runs it after the
# suite (.ci/run). As root on Debian, after scripts/setup.sh (run first, idempotent).
#
# Engine: Docker with Docker Compose (v2: `docker compose`) where `docker info` answers,
# else Debian's podman with podman-compose (installed here: Debian packages, podman-compose
# into .venv; docker-compose 1.x, end of life, rejects the file's top-level name). Podman
# runs with a configuration and a storage of its own under $WORK (CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF: runc, cgroupfs, file events, ulimits within this machine's hard
# limits), so nothing of the machine's own podman is read or touched.
#
# Base images come from no registry: debootstrap (minbase, bookworm) from the Debian
# mirror apt uses here, imported as a local debian:bookworm-slim stand-in, and a Python
# 3.11 base on it (Debian's python3 and pip); both trust the host's CA bundle and take the
# host's pip index settings, so builds work behind a TLS-intercepting proxy. Builds use
# the host's network; the stack's own network is 10.53.0.0/24 (docker-compose.yml).
#
# Checks: the DC provisions; the proxy's health; an UPDATE sent as the README says
# (nsupdate to 127.0.0.1:5300, UDP and TCP) lands in Samba; the audit API, with the
# DC-made token, shows it forwarded as DHCP1$ after the group check, with a negotiated
# GSS-TSIG context; the API answers a Kerberos (SPNEGO) login and refuses none.
#
# Bounded: every wait has its limit and says what it waited for; the whole run stops at
# COMPOSE_TEST_TIMEOUT seconds (1500). On exit (success, failure, signal) the stack's
# containers, volumes, network and every image built here are removed, and the work
# directory with them; COMPOSE_TEST_KEEP=1 keeps the images (and podman's storage) for a
# faster next run. The last line says "compose-test: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT=${COMPOSE_TEST_TIMEOUT:-1500}
WORK=${COMPOSE_TEST_WORK:-/var/tmp/dnsupdate-proxy-compose-test}
KEEP=${COMPOSE_TEST_KEEP:-0}
PROJECT=dnsupdate-proxy-test
IMAGES=localhost/dnsupdate-proxy-test
DEBIAN_BASE=$IMAGES/debian:bookworm-slim
PYTHON_BASE=$IMAGES/python:3.11-slim-bookworm
export DC_IMAGE=$IMAGES/samba-dc:latest PROXY_IMAGE=$IMAGES/proxy:latest
PODMAN_PACKAGES=(podman runc netavark aardvark-dns containernetworking-plugins slirp4netns
                 uidmap fuse-overlayfs iptables debootstrap)
DC_PROVISION_WAIT=600  # seconds; 7-17 s measured in the container on a shared 2-core VM
PROXY_WAIT=180
PY=.venv/bin/python

deadline=$((SECONDS + LIMIT))
passed=0
failed=0
ENGINE=
COMPOSE=()
BUILD_LIMITS=()
NEW_DIRS=()       # podman's leftovers outside $WORK, if there were none before
NEW_CGROUPS=0
OLD_CHAINS=-      # netavark's iptables chains before the run (-: not podman)
DANGLING_BEFORE=  # docker's untagged images before the run (build stages leave some)
ip_forward_before=
logs_shown=0
BOUNDED_PID=

log() { printf 'compose-test [%4d s]: %s\n' "$SECONDS" "$*"; }
die() {
  local why=$*
  [ "$SECONDS" -lt "$deadline" ] || why+=" (stopped: the run's time, COMPOSE_TEST_TIMEOUT=$LIMIT s, is up)"
  log "FAILED: $why" >&2
  exit 1
}
remaining() {
  local left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || die "out of time"
  echo "$left"
}
# bounded CMD...: CMD killed when the run's time is up (or when the run is stopped: run in
# the background and waited for, so that a signal to this script is handled at once)
bounded() {
  local left rc=0
  left=$(remaining) || exit 1
  timeout --kill-after=10 "$left" "$@" <&0 &
  BOUNDED_PID=$!
  wait "$BOUNDED_PID" || rc=$?
  BOUNDED_PID=
  return "$rc"
}
check() {  # check DESCRIPTION CMD...: one named check, counted
  if "${@:2}"; then passed=$((passed + 1)); log "ok: $1"
  else failed=$((failed + 1)); log "FAILED: $1" >&2; fi
}

# --- the engine -------------------------------------------------------------------------

pick_engine() {
  if command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1 \
      && timeout 30 docker compose version >/dev/null 2>&1; then
    ENGINE=docker
    COMPOSE=(docker compose)
    need_packages debootstrap
    DANGLING_BEFORE=$(docker images -q --filter dangling=true | sort -u)
  else
    # (docker-compose 1.x, end of life, rejects the file's top-level name: podman then)
    ENGINE=podman
    need_packages "${PODMAN_PACKAGES[@]}"
    [ -x .venv/bin/podman-compose ] || bounded .venv/bin/pip install -q 'podman-compose>=1.0.6,<2'
    COMPOSE=(.venv/bin/podman-compose)
    podman_config
  fi
  log "engine: $ENGINE ($("$ENGINE" --version | head -1)), compose: ${COMPOSE[*]}"
  COMPOSE+=(-p "$PROJECT" -f docker-compose.yml)
}

need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] && return
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  bounded apt-get update -qq
  bounded apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# podman's configuration and storage, all under $WORK
podman_config() {
  local nofile nproc
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  # (where nproc may not be raised, runc failed to set even the hard limit, 96367, or 65536)
  BUILD_LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")  # builds ignore the defaults
  mkdir -p "$WORK"/{storage,run,networks,tmp}
  cat > "$WORK/containers.conf" <<EOF
# podman for scripts/compose-test.sh only (CONTAINERS_CONF): this machine may not raise
# resource limits and may mix cgroup v1 and v2
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[network]
network_backend = "netavark"
network_config_dir = "$WORK/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/tmp"
EOF
  cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
  export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
  export TMPDIR=$WORK/tmp  # buildah's working directories, too
  # what podman, netavark and runc leave outside $WORK: removed at the end if new
  local dir
  for dir in /run/containers /run/runc /var/lib/containers; do
    [ -e "$dir" ] || NEW_DIRS+=("$dir")
  done
  compgen -G '/sys/fs/cgroup/*/libpod_parent' >/dev/null || NEW_CGROUPS=1
  OLD_CHAINS=$(netavark_chains)
  ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
  timeout 60 podman info >/dev/null || die "podman does not work here: see 'podman info'"
}

# netavark's iptables chains: TOOL TABLE CHAIN lines
netavark_chains() {
  local tool table
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat; do
      "$tool" -t "$table" -S 2>/dev/null | awk -v t="$tool $table" '$1 == "-N" && $2 ~ /^NETAVARK/ { print t, $2 }'
    done
  done
}

# netavark leaves its (empty) chains and the rules that jump to them: remove those it
# made in this run
remove_new_chains() {
  local tool table chain rule
  netavark_chains | grep -vxF -e "${OLD_CHAINS:-none}" | while read -r tool table chain; do
    "$tool" -t "$table" -S | grep -E -- "-j $chain( |\$)" | grep '^-A' | while read -r rule; do
      eval "\"\$tool\" -t \"\$table\" -D ${rule#-A }"
    done
    "$tool" -t "$table" -F "$chain"
  done
  netavark_chains | grep -vxF -e "${OLD_CHAINS:-none}" | while read -r tool table chain; do
    "$tool" -t "$table" -X "$chain"
  done
}

# --- base images without a registry ----------------------------------------------------

# The URIs apt uses for Debian and its security archive, from apt's own view of its sources
debian_mirrors() {
  apt-cache policy | awk '
    / http[s]?:\/\// { uri = $2 }
    /release .*o=Debian,/ && /l=Debian,/ && !main { main = uri }
    /release .*l=Debian-Security,/ && !security { security = uri }
    END { print main; print security }'
}

# pip's settings here (configuration files, then PIP_* variables): KEY=VALUE lines
pip_settings() {
  $PY -m pip config list 2>/dev/null | $PY -c '
import re, sys
files, env = {}, {}
for line in sys.stdin:
    m = re.match(r"(global|:env:)\.([a-z-]+)=(.*)$", line.strip())
    if m:
        (env if m[1] == ":env:" else files)[m[2]] = m[3].strip("\x27\"")
for key, value in {**files, **env}.items():
    print(f"{key}={value}")'
}

# The host's CA bundle, as pip here uses it
host_ca_bundle() {
  local f
  for f in "$(pip_settings | sed -n 's/^cert=//p')" "${REQUESTS_CA_BUNDLE:-}" \
           "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$f" ] && [ -f "$f" ] && { echo "$f"; return; }
  done
  return 0
}

# The host's pip index settings for the images (not its local paths: file: indexes,
# find-links, constraints), with the image's CA bundle (the host's, copied)
host_pip_conf() {
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  pip_settings | $PY -c '
import sys
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("=")
    key = {"default-timeout": "timeout"}.get(key, key)
    if key in ("index-url", "extra-index-url"):
        value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
    if key in ("index-url", "extra-index-url", "trusted-host", "timeout", "retries", "proxy") and value:
        print(f"{key} = {value}")'
}

# --build-arg for each proxy variable set here
proxy_build_args() {
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && echo "--build-arg=$v=${!v}"
  done
  return 0
}

build_bases() {
  local mirrors main security ca rootfs="$WORK/rootfs"
  mirrors=$(debian_mirrors)
  if [ -z "$mirrors" ] || [ -z "$(sed -n 1p <<<"$mirrors")" ]; then  # no package lists yet
    bounded apt-get update -qq
    mirrors=$(debian_mirrors)
  fi
  main=$(sed -n 1p <<<"$mirrors"); security=$(sed -n 2p <<<"$mirrors")
  [ -n "$main" ] || die "no Debian mirror in apt's sources (apt-cache policy); run apt-get update"
  ca=$(host_ca_bundle)
  log "base images: debootstrap bookworm from $main${security:+ (security: $security)}${ca:+, CA bundle $ca}"
  rm -rf "$rootfs"
  bounded debootstrap --variant=minbase bookworm "$rootfs" "$main" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  rm -f "$rootfs/etc/apt/sources.list" "$rootfs/etc/resolv.conf"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$main"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    [ -z "$security" ] || printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security"
  } > "$rootfs/etc/apt/sources.list.d/debian.sources"
  if [ -n "$ca" ]; then  # trusted before and after the image installs ca-certificates
    mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/local/share/ca-certificates"
    cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    cp "$ca" "$rootfs/usr/local/share/ca-certificates/host-ca-bundle.crt"
  fi
  host_pip_conf > "$rootfs/etc/pip.conf"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | bounded "$ENGINE" import - "$DEBIAN_BASE" > "$WORK/import.log" 2>&1 \
    || { cat "$WORK/import.log" >&2; die "importing the Debian base failed"; }
  rm -rf "$rootfs"

  mkdir -p "$WORK/python-base"
  cat > "$WORK/python-base/Dockerfile" <<EOF
# a local stand-in for python:3.11-slim-bookworm: Debian's Python 3.11 and pip
FROM $DEBIAN_BASE
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-pip python3-dev python3-venv python-is-python3 \\
 && rm -rf /var/lib/apt/lists/* \\
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
EOF
  engine_build "$PYTHON_BASE" "$WORK/python-base/Dockerfile" "$WORK/python-base"
}

engine_build() {  # engine_build TAG DOCKERFILE CONTEXT [ARGS...]
  local tag=$1 file=$2 context=$3 pull=--pull=never
  shift 3
  [ "$ENGINE" = docker ] && pull=--pull=false
  log "building $tag"
  # shellcheck disable=SC2046
  bounded "$ENGINE" build --network=host "$pull" "${BUILD_LIMITS[@]}" -t "$tag" -f "$file" \
    $(proxy_build_args) "$@" \
    "$context" > "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; die "building $tag failed (log above)"; }
}

# --- the stack --------------------------------------------------------------------------

container() {  # container SERVICE: the id of the stack's container of SERVICE
  "$ENGINE" ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" | head -1
}

show_logs() {
  local service id
  [ "$logs_shown" = 0 ] || return 0
  logs_shown=1
  for service in dc proxy; do
    id=$(container "$service")
    [ -n "$id" ] || continue
    echo "----- last lines of the $service container's log -----" >&2
    timeout 30 "$ENGINE" logs --tail 40 "$id" >&2 2>&1 || true
  done
}

running() {  # running SERVICE: whether its container is up
  local id
  id=$(container "$1")
  [ -n "$id" ] && [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" = true ]
}

# wait_for WHAT SECONDS SERVICE CMD...: until CMD succeeds; fails naming WHAT when SERVICE's
# container stops or SECONDS (or the run's time) are up
wait_for() {
  local what=$1 limit=$2 service=$3 start=$SECONDS
  shift 3
  log "waiting for $what (at most $limit s)"
  until "$@" >/dev/null 2>&1; do
    running "$service" || { show_logs; die "$what: the $service container stopped"; }
    [ $((SECONDS - start)) -lt "$limit" ] || { show_logs; die "$what: not after $limit s"; }
    remaining >/dev/null
    sleep 2
  done
  log "$what: after $((SECONDS - start)) s"
}

dc_exec() { timeout 60 "$ENGINE" exec "$(container dc)" "$@"; }

https() {  # https PATH [CURL ARGS...]: the proxy's HTTPS interface from this host
  local path=$1
  shift
  curl -sS --max-time 20 --cacert "$WORK/proxy-cert.pem" \
    --resolve proxy.ad.example.test:8053:127.0.0.1 "$@" "https://proxy.ad.example.test:8053$path"
}

nsupdate_host() {  # nsupdate_host [-v] LINES: nsupdate to the published port, as the README says
  local tcp=()
  [ "$1" = -v ] && { tcp=(-v); shift; }
  printf 'server 127.0.0.1 5300\n%s\nsend\n' "$1" | timeout 30 nsupdate -t 10 "${tcp[@]}"
}

samba_answers() {  # samba_answers NAME TYPE EXPECTED: the DC's own DNS has the record
  [ "$(dc_exec dig +short @127.0.0.1 "$1" "$2")" = "$3" ]
}

audit_shows_forwarded() {  # the audit API, with the token, shows NAME forwarded as DHCP1$
  https "/api/v1/audit?name=$1" -H "Authorization: Bearer $(cat "$WORK/http.token")" \
    > "$WORK/audit.json" || return 1
  $PY - "$WORK/audit.json" <<'EOF'
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
ok = [e for e in entries if e["outcome"] == "forwarded-ok" and e["identity"] == "DHCP1$"
      and "DnsUpdateProxy" in json.dumps(e["groups"]) and e["client_address"] == "10.53.0.1"]
if not ok:
    print(json.dumps(entries, indent=1)[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

context_negotiated() {  # /metrics, with the token: a GSS-TSIG context negotiated with the DC
  https /metrics -H "Authorization: Bearer $(cat "$WORK/http.token")" \
    | grep -qE '^dnsproxy_context_negotiations_total\{.*result="ok".*\} [1-9]'
}

spnego_login() {  # kinit as a realm user, then the API with Negotiate: 200
  local password
  password=$($PY -c 'import json, sys
print(next(a["password"] for a in json.load(open(sys.argv[1]))["accounts"]
           if a["sam"] == "other-writer"))' docker/samba/accounts.json)
  (
    export KRB5_CONFIG=docker/krb5.conf KRB5CCNAME=FILE:$WORK/ccache
    timeout 30 kinit other-writer@AD.EXAMPLE.TEST <<<"$password" >/dev/null || exit 1
    [ "$(https '/api/v1/audit?limit=1' --negotiate -u : -o /dev/null -w '%{http_code}')" = 200 ]
  )
}

no_login_refused() {
  [ "$(https '/api/v1/audit?limit=1' -o /dev/null -w '%{http_code}')" = 401 ]
}

# --- cleaning up ------------------------------------------------------------------------

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  exec 1>&7 2>&8  # a signal may have come while a command's output went to a log
  if [ -n "$BOUNDED_PID" ]; then  # a command cut short by a signal
    kill -TERM "$BOUNDED_PID" 2>/dev/null
    wait "$BOUNDED_PID" 2>/dev/null
  fi
  [ "$rc" = 0 ] || [ -z "$ENGINE" ] || show_logs
  if [ -n "$ENGINE" ]; then
    log "removing the stack (containers, volumes, network)"
    timeout 180 "${COMPOSE[@]}" down -v -t 5 >/dev/null 2>&1
    remove_leftovers
  fi
  if [ -n "$ip_forward_before" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$ip_forward_before" ]; then
    echo "$ip_forward_before" > /proc/sys/net/ipv4/ip_forward  # netavark turned it on
  fi
  if [ "$ENGINE" = podman ]; then
    [ "$OLD_CHAINS" = - ] || remove_new_chains
    [ "${#NEW_DIRS[@]}" = 0 ] || rm -rf "${NEW_DIRS[@]}"
    [ "$NEW_CGROUPS" = 0 ] || find /sys/fs/cgroup/*/libpod_parent -depth -type d -exec rmdir {} + 2>/dev/null
  fi
  if [ "$KEEP" != 1 ]; then
    local mount
    findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | while read -r mount; do
      umount -l "$mount"
    done
    rm -rf "$WORK"
  fi
  rm -f "$WORK.lock"
  log "cleaned up; $SECONDS s in all"
  echo "compose-test: $passed passed, $failed failed"
  exit "$rc"
}

# whatever the compose down left: containers, volumes, networks of the project, and the
# images built here (all of podman's private storage but what KEEP keeps)
remove_leftovers() {
  local what ids label=label=com.docker.compose.project=$PROJECT
  for what in "container ls -aq:rm -f" "volume ls -q:rm -f" "network ls -q:rm"; do
    # shellcheck disable=SC2086  # (the words of $what)
    mapfile -t ids < <("$ENGINE" ${what%%:*} --filter "$label" 2>/dev/null)
    # shellcheck disable=SC2086
    [ "${#ids[@]}" = 0 ] || timeout 120 "$ENGINE" ${what%% *} ${what#*:} "${ids[@]}" >/dev/null 2>&1
  done
  [ "$KEEP" = 1 ] && return
  if [ "$ENGINE" = podman ]; then
    timeout 120 podman rmi -af >/dev/null 2>&1
  else
    timeout 120 docker rmi "$DC_IMAGE" "$PROXY_IMAGE" "$PYTHON_BASE" "$DEBIAN_BASE" >/dev/null 2>&1
    mapfile -t ids < <(docker images -q --filter dangling=true | sort -u | comm -13 <(echo "$DANGLING_BEFORE") -)
    [ "${#ids[@]}" = 0 ] || timeout 120 docker rmi "${ids[@]}" >/dev/null 2>&1
  fi
}

# --- the run ----------------------------------------------------------------------------

main() {
  [ "$(id -u)" = 0 ] || die "run as root (packages, container engine)"
  bash scripts/setup.sh >/dev/null
  exec 9>"$WORK.lock"
  flock -n 9 || die "another compose-test run holds $WORK.lock"
  exec 7>&1 8>&2
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$WORK"
  pick_engine
  "${COMPOSE[@]}" down -v -t 5 >/dev/null 2>&1 || true  # a stack left by a killed run

  if "$ENGINE" image exists "$PYTHON_BASE" 2>/dev/null \
      || { [ "$ENGINE" = docker ] && docker image inspect "$PYTHON_BASE" >/dev/null 2>&1; }; then
    log "base images kept from an earlier run"
  else
    build_bases
  fi
  engine_build "$DC_IMAGE" docker/samba/Dockerfile . --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE"
  engine_build "$PROXY_IMAGE" Dockerfile . --build-arg "PYTHON_IMAGE=$PYTHON_BASE"

  log "starting the stack"
  bounded "${COMPOSE[@]}" up -d --no-build > "$WORK/up.log" 2>&1 \
    || { cat "$WORK/up.log" >&2; die "compose up failed (output above)"; }
  wait_for "the DC to provision and export the keytabs" "$DC_PROVISION_WAIT" dc \
    dc_exec sh -c 'test -f /export/ready && dig +short @127.0.0.1 dc1.ad.example.test A | grep -q .'
  dc_exec cat /export/proxy-cert.pem > "$WORK/proxy-cert.pem"
  dc_exec cat /export/http.token > "$WORK/http.token"
  wait_for "the proxy's /healthz on 127.0.0.1:8053" "$PROXY_WAIT" proxy https /healthz -f
  log "stack up; checking"

  local name=compose-test-$RANDOM.ad.example.test
  check "the DC provisioned (Kerberos, LDAP and DNS up; dc1.ad.example.test resolves)" \
    samba_answers dc1.ad.example.test A 10.53.0.2
  # as Kea sends it (RFC 4703): the name must be free, A and DHCID added together (Samba
  # stores no DHCID: the proxy keeps it)
  check "UPDATE over UDP to 127.0.0.1:5300 accepted (NOERROR)" nsupdate_host \
    "zone ad.example.test
prereq nxdomain $name
update add $name 300 A 10.0.1.77
update add $name 300 DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
  check "the A record is in Samba" samba_answers "$name" A 10.0.1.77
  check "UPDATE over TCP to 127.0.0.1:5300 accepted (NOERROR)" nsupdate_host -v \
    "zone 1.0.10.in-addr.arpa
update add 77.1.0.10.in-addr.arpa 300 PTR $name"
  check "the PTR record is in Samba" samba_answers 77.1.0.10.in-addr.arpa PTR "$name."
  check "audit API with the token: forwarded as DHCP1\$ (member of DnsUpdateProxy) from the gateway" \
    audit_shows_forwarded "$name"
  check "a GSS-TSIG context was negotiated with the DC (metrics)" context_negotiated
  check "audit API with Kerberos (SPNEGO): 200" spnego_login
  check "audit API without a login: 401" no_login_refused
  [ "$failed" = 0 ]
}

main "$@"
