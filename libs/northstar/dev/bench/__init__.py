"""Benchmarks: throughput and cost of the lake path, the API extract and the stream against plain baselines."""
