# The two commands of the README. Both create .venv on first use (scripts/setup.sh).
PY := .venv/bin/python

.PHONY: demo test setup clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/tritium demo

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q

clean:
	rm -rf .venv tritium-demo .pytest_cache .hypothesis
