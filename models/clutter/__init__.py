"""Line-level web-clutter model: scores each line of trafilatura's output 0-1 (1 = informational).

``load(path, device)`` returns a :class:`ClutterPredictor`; ``score_docs`` takes the lines of many
documents and runs them in device-sized batches of whole documents (the model reads each line's
neighbours). Features: :mod:`pipeline.filter.clutter`; training: ``jobs/train_clutter.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from models.clutter.net import ARCH, ClutterContextNet
from models.common import (
    CONFIG,
    WEIGHTS,
    get_or_load,
    load_model,
    predict_proba,
    resolve_device,
    resolve_model_dir,
)
from pipeline.filter.clutter import N_LINE_FEATURES, featurize_doc
from pipeline.filter.features import Features

DEFAULT_DIR = "models/clutter"  # resolved by models.common.resolve_model_dir


def load_net(path: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The module of a clutter artifact (``ClutterContextNet``, or the older ``HashedBagMLP``), in eval
    mode and float64 on ``device`` (as :func:`models.common.load_model`: scores then do not depend on
    the batch shape)."""
    cfg = json.loads((resolve_model_dir(path) / CONFIG).read_text(encoding="utf-8"))
    if cfg.get("n_features") != N_LINE_FEATURES:
        raise ValueError(
            f"clutter model {str(path)!r} was trained on {cfg.get('n_features')} line features, this code makes "
            f"{N_LINE_FEATURES}: retrain it with jobs/train_clutter.py"
        )
    if cfg.get("arch") != ARCH:
        return load_model(path, device)
    model = ClutterContextNet(cfg["n_buckets"], cfg["emb_dim"], cfg["n_features"], cfg["hidden"],
                              cfg["context_layers"], cfg.get("dropout", 0.0))
    model.load_state_dict(load_file(str(resolve_model_dir(path) / WEIGHTS)))
    model.eval().to(device=device, dtype=torch.float64)
    return model, cfg


class ClutterPredictor:
    def __init__(self, path: str | Path | None = None, device: str | None = "auto", batch_lines: int | None = None):
        self.device = resolve_device(device)
        self.model, self.config = load_net(path or DEFAULT_DIR, self.device)
        self.version: str = self.config["version"]
        self.n_buckets: int = self.config["n_buckets"]
        self.batch_lines = batch_lines or (65536 if self.device.type == "cuda" else 8192)

    def featurize(self, docs: list[list[str]]) -> list[Features]:
        return [featurize_doc(lines, self.n_buckets) for lines in docs]

    def score_features(self, feats: list[Features]) -> list[np.ndarray]:
        """Scores per document for featurized documents, batched by whole documents."""
        out: list[np.ndarray] = []
        i = 0
        while i < len(feats):
            j, n = i, 0
            while j < len(feats) and (j == i or n + len(feats[j]) <= self.batch_lines):
                n += len(feats[j])
                j += 1
            scores = predict_proba(self.model, Features.concat(feats[i:j]), self.device)
            start = 0
            for f in feats[i:j]:
                out.append(scores[start : start + len(f)])
                start += len(f)
            i = j
        return out

    def score_docs(self, docs: list[list[str]]) -> list[np.ndarray]:
        """``docs[i]`` = the non-blank lines of document i -> scores ``[len(docs[i])]`` in [0, 1]."""
        return self.score_features(self.featurize(docs))


def load(path: str | Path | None = None, device: str | None = "auto", batch_lines: int | None = None) -> ClutterPredictor:
    return ClutterPredictor(path, device, batch_lines)


def load_cached(path: str | Path | None, device: str, batch_lines: int | None = None) -> ClutterPredictor:
    """The predictor for (path, device), loaded once per process (see models.common.get_or_load)."""
    key = ("clutter", str(path or DEFAULT_DIR), device, batch_lines)
    return get_or_load(key, lambda: ClutterPredictor(path, device, batch_lines))
