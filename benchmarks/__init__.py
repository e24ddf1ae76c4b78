"""Benchmarks: throughput ratios measured in one run against a baseline (make bench)."""
