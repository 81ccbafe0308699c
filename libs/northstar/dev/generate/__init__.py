"""Seeded generators of realistic source data for the demo, tests and benchmarks."""
