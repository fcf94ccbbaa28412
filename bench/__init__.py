"""Benchmarks: each module runs standalone and writes its figures to bench/results/."""
