"""Document quality model: one 0-1 score per document (1 = fluent, coherent, non-repetitive).

``load(path, device)`` returns a :class:`QualityPredictor`; features: :mod:`pipeline.filter.quality`;
training: ``jobs/train_quality.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.common import get_or_load, load_model, predict_proba, resolve_device
from pipeline.filter.quality import featurize_docs

DEFAULT_DIR = "models/quality"  # resolved by models.common.resolve_model_dir


class QualityPredictor:
    def __init__(self, path: str | Path | None = None, device: str | None = "auto", batch_docs: int | None = None):
        self.device = resolve_device(device)
        self.model, self.config = load_model(path or DEFAULT_DIR, self.device)
        self.version: str = self.config["version"]
        self.n_buckets: int = self.config["n_buckets"]
        self.batch_docs = batch_docs or (1024 if self.device.type == "cuda" else 256)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Scores ``[len(texts)]`` in [0, 1]."""
        out = [
            predict_proba(self.model, featurize_docs(texts[i : i + self.batch_docs], self.n_buckets), self.device)
            for i in range(0, len(texts), self.batch_docs)
        ]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def load(path: str | Path | None = None, device: str | None = "auto", batch_docs: int | None = None) -> QualityPredictor:
    return QualityPredictor(path, device, batch_docs)


def load_cached(path: str | Path | None, device: str, batch_docs: int | None = None) -> QualityPredictor:
    key = ("quality", str(path or DEFAULT_DIR), device, batch_docs)
    return get_or_load(key, lambda: QualityPredictor(path, device, batch_docs))
