"""Benchmarks (`make bench`): each suite measures against a baseline taken in the same run."""
