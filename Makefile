# Two commands set up a fresh machine (see README): `make demo` and `make test`.
# Each installs what it needs first (`make setup`, idempotent: re-runs only what changed).
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= out/demo
BENCH_OUT ?= out/bench.json

.PHONY: setup assets test demo bench clean distclean help

help:
	@echo "make setup   create .venv (Python 3.11, ROS 2 Jazzy wheels, pinned deps), build the messages, fetch the face video"
	@echo "make test    set up, then run the whole test suite"
	@echo "make demo    set up, then run the node on a real face video and write results to $(DEMO_OUT)"
	@echo "make bench   set up, then run the benchmark suite and write $(BENCH_OUT)"
	@echo "             (the node soak: make bench BENCH_ARGS=\"--sections soak\" BENCH_OUT=out/soak.json)"
	@echo "             (detector memory, 100,000 calls each: make bench BENCH_ARGS=\"--sections detector_memory\")"
	@echo "             (offline soak and hostile inputs: make bench BENCH_ARGS=\"--sections soak_offline startup_signals oversized_images\")"
	@echo "make assets  set up, then (re)check the sample face videos in the cache (dfer-fetch-assets)"

setup:
	@bash scripts/setup.sh

# the videos are fetched by `make setup` already; this reports them and fetches what is missing
assets: setup
	@$(VENV)/bin/dfer-fetch-assets

test: setup
	@bash scripts/run_tests.sh

demo: setup
	@$(PY) -m dfer_ros.cli.demo --out $(DEMO_OUT)

bench: setup
	@$(VENV)/bin/dfer-bench --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf build out

distclean: clean
	rm -rf $(VENV) .cache
