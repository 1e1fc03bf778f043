"""Benchmarks: python -m bench (make bench) writes bench/RESULTS.md."""
