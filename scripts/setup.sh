#!/bin/bash
# setup.sh - idempotent setup on Debian 12 as root: Debian packages, .venv, the project.
#
# Daemons are never started by the package install: the lab starts its own copies
# inside a private network namespace. A temporary policy-rc.d forbids service starts
# during the install whether or not the machine already had one.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  make gcc python3-dev python3-venv iproute2 util-linux procps systemd socat
  bind9 bind9-dnsutils
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev
  slapd ldap-utils
  kea-dhcp4-server kea-dhcp6-server kea-dhcp-ddns-server kea-admin isc-dhcp-server isc-dhcp-client
  postgresql chromium
  prometheus                       # promtool: tests check deploy/prometheus/ rules
  samba samba-dsdb-modules samba-vfs-modules samba-ad-provision python3-samba winbind
)
STAMP=.venv/.setup-done

missing_packages() {
  local p
  for p in "${PACKAGES[@]}" libsasl2-modules-gssapi-mit; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_packages() {
  [ "$(id -u)" = 0 ] || { echo "setup: run as root to install Debian packages" >&2; exit 1; }
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1 && cp -p /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.dnsupdate-proxy
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  restore() {
    if [ "$had_policy" = 1 ]; then mv -f /usr/sbin/policy-rc.d.dnsupdate-proxy /usr/sbin/policy-rc.d
    else rm -f /usr/sbin/policy-rc.d; fi
  }
  trap restore EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  # The SASL GSSAPI plugin must match the installed libsasl2-2 exactly.
  apt-get install -y -qq --no-install-recommends \
    "libsasl2-modules-gssapi-mit=$(dpkg-query -W -f='${Version}' libsasl2-2)" >/dev/null
  restore; trap - EXIT
}

[ -z "$(missing_packages)" ] || install_packages

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$STAMP"
fi
echo "setup: ok"
