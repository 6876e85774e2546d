"""Benchmarks of the session server; each prints its figures as one JSON object on its last line."""
