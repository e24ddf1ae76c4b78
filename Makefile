# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: demo test test-unit test-streams test-e2e test-faults install prerequisites broker stop bench dashboards clean

demo: install  ## broker, topics, worker, Prometheus, simulated traffic and the live funnel
	$(BIN)/posvenda demo

test: install  ## the whole suite: unit, streams, end-to-end and fault tests on the real broker
	infra/kafka.sh start
	$(PYTEST) -q tests/unit tests/streams tests/e2e
	$(MAKE) --no-print-directory test-faults

test-unit: install
	$(PYTEST) -q tests/unit tests/streams

test-e2e: install
	infra/kafka.sh start
	$(PYTEST) -q tests/e2e

test-faults: install
	infra/kafka.sh start
	@if [ -n "$$(ls tests/faults/test_*.py 2>/dev/null)" ]; then $(PYTEST) -q tests/faults; else echo "no fault tests yet"; fi

prerequisites:
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { echo "posvenda needs Python 3.11+ (python3 is $$($(PY) --version 2>&1)); install it, or run make PY=python3.11"; exit 1; }
	@command -v java >/dev/null || { echo "posvenda needs a JDK 17+ for the local Kafka broker: apt-get install openjdk-17-jdk-headless"; exit 1; }
	@command -v mvn >/dev/null || [ -f "$${XDG_CACHE_HOME:-$$HOME/.cache}/posvenda/kafka-3.9.1/libs/.complete" ] || { echo "posvenda needs Maven to fetch the Kafka jars: apt-get install maven"; exit 1; }
	@command -v promtool >/dev/null || infra/install-prometheus.sh

install: prerequisites $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

broker:  ## start the local broker only
	infra/kafka.sh start

stop:  ## stop the local broker and Prometheus
	-@test -x infra/prometheus.sh && infra/prometheus.sh stop
	infra/kafka.sh stop

bench: install  ## every runner on the same events, one table (benchmarks/run.py --help; BENCH_ARGS="--runs 1 ...")
	infra/kafka.sh start
	$(BIN)/python -m benchmarks.extra
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

dashboards: install  ## regenerate the Grafana dashboards JSON from alerts/dashboards.py
	$(BIN)/posvenda dashboards build

clean: stop
	rm -rf .state $(VENV)
