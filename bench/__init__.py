"""Benchmarks, each run as ``python -m bench.<name>`` from the repository root (``make bench`` runs the CPU ones)."""


def write_json(path: str, figures: dict) -> None:
    """Write a bench's figures as JSON (the ``--json FILE`` option; ``make bench`` collects them)."""
    import json
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(figures, indent=1), encoding="utf-8")
