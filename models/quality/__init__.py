"""Document quality model: one 0-1 score per document (1 = fluent, coherent, non-repetitive).

``load(path, device)`` returns a :class:`QualityPredictor`; features: :mod:`pipeline.filter.quality`
(hashed n-grams + document statistics) and, for artifacts with ``coherence_features`` in their config,
:mod:`models.quality.coherence` (sentence-order signals); training: ``jobs/train_quality.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.common import get_or_load, load_model, predict_proba, resolve_device
from models.quality.coherence import N_COHERENCE_FEATURES, coherence_features
from pipeline.filter.features import Features
from pipeline.filter.quality import N_DOC_FEATURES, featurize_docs

DEFAULT_DIR = "models/quality"  # resolved by models.common.resolve_model_dir


def featurize(texts: list[str], n_buckets: int, coherence: bool, labels: list[float] | None = None) -> Features:
    """Model input of a batch: :func:`pipeline.filter.quality.featurize_docs`, plus the coherence
    features appended to the dense features when ``coherence``."""
    f = featurize_docs(texts, n_buckets, labels)
    if coherence:
        f.feats = np.concatenate([f.feats, coherence_features(texts)], axis=1)
    return f


class QualityPredictor:
    def __init__(self, path: str | Path | None = None, device: str | None = "auto", batch_docs: int | None = None):
        self.device = resolve_device(device)
        self.model, self.config = load_model(path or DEFAULT_DIR, self.device)
        self.version: str = self.config["version"]
        self.n_buckets: int = self.config["n_buckets"]
        self.batch_docs = batch_docs or (1024 if self.device.type == "cuda" else 256)
        n_coh = int(self.config.get("coherence_features", 0))
        if n_coh not in (0, N_COHERENCE_FEATURES) or self.config["n_features"] != N_DOC_FEATURES + n_coh:
            raise ValueError(
                f"{path or DEFAULT_DIR}: n_features={self.config['n_features']} with coherence_features={n_coh} "
                f"does not match this code ({N_DOC_FEATURES} document + {N_COHERENCE_FEATURES} coherence features)"
            )
        self.coherence = n_coh > 0

    def featurize(self, texts: list[str]) -> Features:
        """This model's input for ``texts`` (one batch)."""
        return featurize(texts, self.n_buckets, self.coherence)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Scores ``[len(texts)]`` in [0, 1]."""
        out = [
            predict_proba(self.model, self.featurize(texts[i : i + self.batch_docs]), self.device)
            for i in range(0, len(texts), self.batch_docs)
        ]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def load(path: str | Path | None = None, device: str | None = "auto", batch_docs: int | None = None) -> QualityPredictor:
    return QualityPredictor(path, device, batch_docs)


def load_cached(path: str | Path | None, device: str, batch_docs: int | None = None) -> QualityPredictor:
    key = ("quality", str(path or DEFAULT_DIR), device, batch_docs)
    return get_or_load(key, lambda: QualityPredictor(path, device, batch_docs))
