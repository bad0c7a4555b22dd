"""Console entry points (dfer-eval, dfer-bench, ...): thin argparse layers over the library."""
