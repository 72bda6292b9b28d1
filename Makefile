# The two set-up commands of the README:
#   make demo   installs (into ./.venv) and runs the main job on SynthAerial
#   make test   installs and runs the lint and the test suite
PY := .venv/bin/python
WORKDIR ?= workdirs/reproduce-$(VARIANT)
VARIANT ?= default
export XLA_FLAGS ?= --xla_force_host_platform_device_count=8

.PHONY: setup demo test lint bench-quick

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m eval.reproduce --config configs/reproduce.py:$(VARIANT) --workdir $(WORKDIR)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 -p no:cacheprovider --durations=30 tests

bench-quick: setup
	$(PY) -m eval.bench sharded_step --quick
