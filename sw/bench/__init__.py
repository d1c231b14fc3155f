"""Benchmarks, the published anchors and the report."""
