# The two commands of the README, and the checks.
#   make demo   install into .venv, build the demo zoo, index it, query it
#   make test   install into .venv, start a throwaway Neo4j, run every test, stop it
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_STORE := demo.db

.PHONY: install demo test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,neo4j,render]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf demo-zoo $(DEMO_STORE)
	$(BIN)/circuitql zoo demo demo-zoo
	$(BIN)/circuitql index demo-zoo --store $(DEMO_STORE)
	$(BIN)/circuitql models --store $(DEMO_STORE)
	$(BIN)/circuitql query "MATCH min" --store $(DEMO_STORE)
	$(BIN)/circuitql query "EXPLAIN MATCH abs" --store $(DEMO_STORE)

test: install
	scripts/test

check: install
	$(BIN)/ruff check circuitql tests benchmarks docs
	$(BIN)/ruff format --check circuitql tests benchmarks docs
	$(BIN)/mypy

bench: install
	PYTHONPATH=. $(BIN)/python benchmarks/suite.py

clean:
	rm -rf demo-zoo $(DEMO_STORE) $(DEMO_STORE)-wal $(DEMO_STORE)-shm .neo4j
