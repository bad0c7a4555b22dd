"""Benchmarks (not tests): they print measured numbers; run as python -m dfer_ros.bench.<name>."""
