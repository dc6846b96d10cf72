# The two commands: `make demo` and `make test`. Each runs the idempotent setup first.
PY := .venv/bin/python
LAB_DIR ?= /tmp/dnsupdate-proxy-demo

.PHONY: setup test demo lint bench clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

demo: setup
	$(PY) -m lab.demo $(LAB_DIR)

bench: setup
	$(PY) -m lab.bench $(BENCH_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf .venv build *.egg-info
