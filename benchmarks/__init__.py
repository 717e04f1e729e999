"""Benchmarks of glassbox's metrics middleware against its peers (see README.md)."""
