# The two commands of the README, and the edit-test loop's subset. Each creates .venv on
# first use (scripts/setup.sh). test-fast takes more pytest options in PYTEST_ARGS
# (make test-fast PYTEST_ARGS="-k compiler --durations=25").
PY := .venv/bin/python

.PHONY: demo test test-fast setup clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/tritium demo

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The tests that simulate no RTL, build no bitstream and train no long run (markers rtl, slow).
test-fast: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow and not rtl" $(PYTEST_ARGS)

clean:
	rm -rf .venv tritium-demo .pytest_cache .hypothesis
