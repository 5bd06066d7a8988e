"""Shared model machinery: the hashed-n-gram bag + features + MLP module, artifact I/O, devices, the
per-worker model cache, and a small binary-classification training loop.

Artifact layout (DESIGN.md "Models"): ``<dir>/model.safetensors`` (weights, fp32), ``<dir>/config.json``
(architecture, ``version``, training summary) and ``<dir>/MODEL_CARD.md``. The version is
``<name>-<YYYYMMDD>-<sha256(weights)[:8]>``, so two artifacts with the same version hold the same weights.

Architecture (fastText-style, Joulin et al. 2017): ``EmbeddingBag(mean)`` over hashed unigrams and
bigrams -> ``[N, D]``; optionally concatenated with the bags of the previous and next item (context);
concatenated with standardized dense features ``[N, F]``; a 2-layer MLP gives one logit per item.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.config import REPO_ROOT
from pipeline.filter.features import Features

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "MODEL_CARD.md"

T = TypeVar("T")

# ---------------------------------------------------------------- per-worker cache

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()
LOAD_COUNTS: Counter = Counter()


def get_or_load(key: tuple, loader: Callable[[], T]) -> T:
    """Return the object cached under ``key`` in this process, calling ``loader()`` the first time.

    Spark reuses Python workers across tasks (``spark.python.worker.reuse``, on by default), so a
    model cached in this module-level dict is loaded once per worker process, not per task or batch.
    ``LOAD_COUNTS[key]`` counts the loads (tests read it across tasks).
    """
    obj = _CACHE.get(key)
    if obj is not None:
        return obj
    with _LOCK:
        obj = _CACHE.get(key)
        if obj is None:
            obj = loader()
            _CACHE[key] = obj
            LOAD_COUNTS[key] += 1
    return obj


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def category_module():
    """``models.category`` (the category classifier package) or None when that package does not exist;
    an import error inside an existing package is raised, never masked."""
    import importlib

    try:
        return importlib.import_module("models.category")
    except ModuleNotFoundError as e:
        if e.name != "models.category":
            raise
        return None


# ---------------------------------------------------------------- devices and paths


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> ``cuda`` when available else ``cpu``; ``cuda`` and ``cuda:N`` demand CUDA."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device=cpu or auto")
    return dev


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model directory: absolute, relative to the working directory, or relative to the repo root
    (``pipeline.config.REPO_ROOT``: the checkout, or ``./dots_data`` when shipped by ``make submit``)."""
    p = Path(path)
    for cand in (p, REPO_ROOT / p, Path(__file__).resolve().parent.parent / p):
        if (cand / CONFIG).exists():
            return cand.resolve()
    raise ValueError(
        f"model directory {str(path)!r} has no {CONFIG}; pass a directory written by the training job "
        f"(e.g. models/clutter) or retrain with jobs/train_*.py"
    )


def read_config(path: str | os.PathLike) -> dict:
    d = resolve_model_dir(path)
    return json.loads((d / CONFIG).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the module


class HashedBagMLP(nn.Module):
    """Hashed n-gram bag (+ neighbour bags) + standardized features -> MLP -> one logit per item."""

    def __init__(
        self, n_buckets: int, emb_dim: int, n_features: int, hidden: int, context: bool, dropout: float = 0.0
    ):
        super().__init__()
        self.n_buckets, self.emb_dim, self.context, self.dropout = n_buckets, emb_dim, context, dropout
        self.bag = nn.EmbeddingBag(n_buckets, emb_dim, mode="mean")
        nn.init.normal_(self.bag.weight, std=0.1)
        self.register_buffer("feat_mean", torch.zeros(n_features))
        self.register_buffer("feat_std", torch.ones(n_features))
        width = emb_dim * (3 if context else 1) + n_features
        # Dropout layers hold no weights, so artifacts load whatever dropout they were trained with.
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(
        self,
        ids_T: torch.Tensor,
        offsets_N: torch.Tensor,
        feats_NF: torch.Tensor,
        prev_N: torch.Tensor,
        next_N: torch.Tensor,
    ) -> torch.Tensor:
        emb_ND = self.bag(ids_T, offsets_N)
        parts = [emb_ND]
        if self.context:
            # Row N is a zero vector: index -1 (no neighbour) maps to it.
            padded = torch.cat([emb_ND, emb_ND.new_zeros(1, self.emb_dim)])
            n = emb_ND.shape[0]
            parts.append(padded[torch.where(prev_N >= 0, prev_N, n)])
            parts.append(padded[torch.where(next_N >= 0, next_N, n)])
        parts.append((feats_NF - self.feat_mean) / self.feat_std)
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)

    def set_feature_scaling(self, feats: np.ndarray) -> None:
        self.feat_mean.copy_(torch.from_numpy(feats.mean(0)))
        self.feat_std.copy_(torch.from_numpy(feats.std(0) + 1e-3))


def to_device(f: Features, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    nb = device.type == "cuda"
    return (
        torch.from_numpy(f.ids).to(device, non_blocking=nb),
        torch.from_numpy(f.offsets).to(device, non_blocking=nb),
        torch.from_numpy(f.feats).to(device, dtype=dtype, non_blocking=nb),
        torch.from_numpy(f.prev).to(device, non_blocking=nb),
        torch.from_numpy(f.next).to(device, non_blocking=nb),
    )


@torch.inference_mode()
def predict_proba(model: HashedBagMLP, f: Features, device: torch.device) -> np.ndarray:
    """Sigmoid scores ``[N]`` (returned as fp32) for one batch, computed in the model's dtype."""
    if len(f) == 0:
        return np.zeros(0, dtype=np.float32)
    dtype = model.feat_mean.dtype
    return torch.sigmoid(model(*to_device(f, device, dtype))).float().cpu().numpy()


# ---------------------------------------------------------------- artifacts


def save_model(
    out_dir: str | os.PathLike, name: str, model: HashedBagMLP, extra: dict[str, Any], card: str
) -> dict:
    """Write weights + config.json (+ card with ``{version}`` filled in); returns the config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS), metadata={"name": name})
    digest = hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest()[:8]
    version = f"{name}-{_dt.datetime.now(_dt.UTC).strftime('%Y%m%d')}-{digest}"
    cfg = {
        "name": name,
        "version": version,
        "arch": "HashedBagMLP",
        "n_buckets": model.n_buckets,
        "emb_dim": model.emb_dim,
        "n_features": int(model.feat_mean.shape[0]),
        "hidden": model.mlp[1].out_features,
        "dropout": model.dropout,
        "context": model.context,
        **extra,
    }
    (out / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / CARD).write_text(card.replace("{version}", version), encoding="utf-8")
    return cfg


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[HashedBagMLP, dict]:
    d = resolve_model_dir(path)
    cfg = json.loads((d / CONFIG).read_text(encoding="utf-8"))
    model = HashedBagMLP(
        cfg["n_buckets"], cfg["emb_dim"], cfg["n_features"], cfg["hidden"], cfg["context"], cfg.get("dropout", 0.0)
    )
    model.load_state_dict(load_file(str(d / WEIGHTS)))
    # Inference in float64, returned as float32: BLAS/cuBLAS pick kernels by batch shape, so fp32 scores
    # of a document can differ in the last bit with the Arrow batch it lands in; a float64 forward pass
    # rounded to float32 makes the output byte-identical whatever the partitioning. Cost: ~1.8x the fp32
    # forward pass on CPU, still a small share next to Python featurization (see bench/model_speed.py).
    model.eval().to(device=device, dtype=torch.float64)
    return model, cfg


# ---------------------------------------------------------------- training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def group_batches(sizes: list[int], max_items: int, order: list[int]) -> Iterator[list[int]]:
    """Group whole groups (documents) in ``order`` into batches of at most ``max_items`` items
    (a single larger group forms its own batch)."""
    cur: list[int] = []
    n = 0
    for g in order:
        if cur and n + sizes[g] > max_items:
            yield cur
            cur, n = [], 0
        cur.append(g)
        n += sizes[g]
    if cur:
        yield cur


def train_binary(
    model: HashedBagMLP,
    groups: list[Features],
    epochs: int,
    lr: float,
    batch_items: int,
    seed: int,
    log: Callable[[str], None] = print,
    pos_weight: float = 1.0,
) -> HashedBagMLP:
    """Train with Adam on BCE. ``groups`` are labeled documents (kept whole in a batch so the
    context links stay inside it); a label < 0 means unknown: the item is context only, no loss.
    Deterministic for a given seed on CPU."""
    seed_everything(seed)
    model.set_feature_scaling(np.concatenate([g.feats for g in groups]))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    pw = torch.tensor(pos_weight)
    sizes = [len(g) for g in groups]
    rng = random.Random(seed)
    device = torch.device("cpu")
    for epoch in range(epochs):
        order = list(range(len(groups)))
        rng.shuffle(order)
        model.train()
        total, n = 0.0, 0
        for batch in group_batches(sizes, batch_items, order):
            f = Features.concat([groups[i] for i in batch])
            labels = torch.from_numpy(f.labels)
            mask = labels >= 0
            if not bool(mask.any()):
                continue
            logits = model(*to_device(f, device))
            loss = nn.functional.binary_cross_entropy_with_logits(logits[mask], labels[mask], pos_weight=pw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * int(mask.sum())
            n += int(mask.sum())
        log(f"epoch {epoch + 1}/{epochs}: loss {total / max(1, n):.4f}")
    model.eval()
    return model


def predict_groups(model: HashedBagMLP, groups: list[Features], batch_items: int = 8192) -> list[np.ndarray]:
    """Scores per group, in order (CPU)."""
    device = torch.device("cpu")
    out: list[np.ndarray] = []
    sizes = [len(g) for g in groups]
    for batch in group_batches(sizes, batch_items, list(range(len(groups)))):
        scores = predict_proba(model, Features.concat([groups[i] for i in batch]), device)
        start = 0
        for i in batch:
            out.append(scores[start : start + sizes[i]])
            start += sizes[i]
    return out
