"""Benchmarks (not tests): they print and write numbers, e.g. ``dfer bench latency``;
the command lines live in ``dfer_ros.cli``."""
