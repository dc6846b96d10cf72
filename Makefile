# Shortcuts for developers; the README's commands are scripts/demo.sh and scripts/test.sh
# (a bare machine has no make). Each runs the idempotent setup first.
LAB_DIR ?= /tmp/dnsupdate-proxy-demo

.PHONY: setup test demo bench lint clean

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh $(LAB_DIR)

bench: setup
	.venv/bin/python -m lab.bench $(BENCH_ARGS)

lint: setup
	.venv/bin/python -m ruff check .

clean:
	rm -rf .venv build *.egg-info
