#!/bin/bash
# The whole test suite, real daemons included, on a bare Debian 12 machine as root:
# setup first (idempotent), then ruff and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
