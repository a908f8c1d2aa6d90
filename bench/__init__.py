"""Benchmark harness for the ingest endpoints: ``python -m bench`` (see bench/README.md).

Not part of the test suite: it starts its own PostgreSQL, the real service and a
no-database baseline server, and drives them from a separate load-generator process.
"""
