"""Benchmarks against the libraries flowdist competes with (results committed beside them)."""
