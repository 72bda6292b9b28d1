# The two set-up commands of the README:
#   make demo   installs (into ./.venv) and runs the main job on SynthAerial
#   make test   installs and runs the lint, the test suite and the site build
PY := .venv/bin/python
WORKDIR ?= workdirs/reproduce-$(VARIANT)
VARIANT ?= default
export XLA_FLAGS ?= --xla_force_host_platform_device_count=8

.PHONY: setup demo test lint docs bench-quick

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m eval.reproduce --config configs/reproduce.py:$(VARIANT) --workdir $(WORKDIR)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist worksteal -p no:cacheprovider --durations=30 tests
	$(MAKE) --no-print-directory docs

# The site, strictly: broken links, missing API entries and failing tutorials
# (run in tiny mode) fail the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

bench-quick: setup
	$(PY) -m eval.bench sharded_step --quick
