# Marketplace BI. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Test workers, each with its own embedded PostgreSQL; a test file stays on one worker (its
# module fixtures are made once). On a server of your own (TEST_DATABASE_URL) one worker: the
# workers' databases would share names, and the analysts' role is the server's.
TEST_WORKERS ?= $(if $(TEST_DATABASE_URL),1,2)
# The stamp changes with requirements.txt, so an edited file reinstalls.
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test test-fast bench screenshots clean

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(PY) -m data migrate
	$(PY) -m data seed --if-empty
	$(PY) -m data demo-users
	PORT=$(PORT) PY=$(PY) bash scripts/run.sh

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The edit loop: pure and database tiers, without AppTest, the browser and the slowest tests
# (tiers in tests/conftest.py). `make test` runs everything.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not app and not browser and not slow"

# Every section on new databases; BENCH_ARGS="--only pages,query" re-measures some (python -m bench --list).
bench: install
	$(PY) -m bench $(BENCH_ARGS)

screenshots: install
	$(PY) -m scripts.screenshots

clean:
	rm -rf $(VENV) .pytest_cache artifacts
