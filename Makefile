# Two commands set up a fresh machine (see README): `make demo` and `make test`.
# Each installs what it needs first (`make setup`, idempotent: re-runs only what changed).
VENV := .venv
PY := $(VENV)/bin/python
DFER := $(VENV)/bin/dfer
DEMO_OUT ?= out/demo
BENCH_OUT ?= out/bench.json

.PHONY: setup assets test demo bench clean distclean help

help:
	@echo "make setup   create .venv (Python 3.11, ROS 2 Jazzy wheels, pinned deps), build the messages, fetch the face video"
	@echo "make test    set up, then run the whole test suite"
	@echo "make demo    set up, then run the node on a real face video and write results to $(DEMO_OUT)"
	@echo "make bench   set up, then run the benchmark suite and write $(BENCH_OUT)"
	@echo "             (sections: make bench BENCH_ARGS=\"crowd latency\"; dfer bench --help lists them)"
	@echo "             (the node soak: make bench BENCH_ARGS=soak BENCH_OUT=out/soak.json)"
	@echo "             (detector memory, 100,000 calls each: make bench BENCH_ARGS=detector_memory)"
	@echo "             (REP-155 producer angles, engagement walk and cost: make bench BENCH_ARGS=hri BENCH_OUT=out/hri.json; the running node: dfer bench hri node)"
	@echo "             (offline soak and hostile inputs: make bench BENCH_ARGS=\"soak_offline startup_signals oversized_images\")"
	@echo "make assets  set up, then (re)check the sample face videos in the cache (dfer fetch-assets)"

setup:
	@bash scripts/setup.sh

# the videos are fetched by `make setup` already; this reports them and fetches what is missing
assets: setup
	@$(DFER) fetch-assets

test: setup
	@bash scripts/run_tests.sh

demo: setup
	@$(DFER) demo --out $(DEMO_OUT)

bench: setup
	@$(DFER) bench $(BENCH_ARGS) --out $(BENCH_OUT)

clean:
	rm -rf build out

distclean: clean
	rm -rf $(VENV) .cache
