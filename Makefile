# GreenLens — the two commands: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap.sh scripts/debian-packages.txt $(wildcard components/*/requirements.txt)
	scripts/bootstrap.sh

test: setup
	$(PY) -m ruff check simulator tests
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check simulator tests

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

run: setup
	$(VENV)/bin/ggsim up

clean:
	rm -rf $(VENV) build greengrass-build
