"""Benchmarks: convscope against the classic Keras notebook, and the serving load test."""
