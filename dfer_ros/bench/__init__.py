"""Benchmarks (not tests): they print and write numbers, e.g. ``python -m dfer_ros.bench.latency_bench``."""
