#!/bin/bash
# The demo on a bare Debian 12 machine as root: setup first (idempotent), then the lab,
# the proxy and Kea registering clients through it; Ctrl-C tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m lab.demo "${1:-/tmp/dnsupdate-proxy-demo}"
