"""Benchmark harness: subprocess per runtime, interleaved blocks, statistics."""
