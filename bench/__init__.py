"""Benchmarks, each run as ``python -m bench.<name>`` from the repository root (``make bench`` runs the CPU ones)."""
