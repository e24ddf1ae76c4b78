"""Command-line entry points at the edges: ingest, simulate, topics, worker."""
