# The front door: `make demo` and `make test` do all set-up on a fresh Debian machine (as root).
PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: setup test test-fast lint demo demo-fabric clean

setup:
	@bash scripts/setup.sh

# Every test tier. Tiers needing root or real daemons fail loudly when they are missing.
test: setup
	$(PY) -m ruff check calico tests benchmarks
	$(PYTEST) -q tests

# The unit tier only: no root, no daemons. Run before every commit.
test-fast: setup
	$(PYTEST) -q tests/unit

lint: setup
	$(PY) -m ruff check calico tests benchmarks

demo: setup
	@bash scripts/demo.sh

# Optional: the same cluster on an L3 leaf-spine fabric (racks, ToRs, spines).
demo-fabric: setup
	@bash scripts/demo-fabric.sh

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis
