"""The category classifier: bags of hashed n-grams and of pretrained sub-word pieces -> linear layer.

Two bags, either may be off (dimension 0):

* hashed n-grams (fastText, Joulin et al., 2017): ``EmbeddingBag(num_buckets, dim, mean)`` over the
  CRC32 buckets of :func:`pipeline.category.features.token_feature_ids`;
* pretrained pieces: ``EmbeddingBag(32000, piece_dim, mean)`` over the WordLlama piece ids of the same
  tokens (:class:`pipeline.category.features.PieceEncoder`), initialised from the first ``piece_dim``
  columns of WordLlama's static token embeddings (Matryoshka-trained, so a prefix is a valid smaller
  embedding) and fine-tuned; the mean vector is L2-normalised and scaled by ``piece_scale * sqrt(piece_dim)``
  (WordLlama's own pooling normalises the same way).

The two mean vectors are concatenated -> ``Linear`` -> logits [B, C]. Shapes: ``ids`` [F] / ``offsets`` [B]
per bag. The model is small (stored as float16), fast on CPU and trivially batched on GPU. Training
is mini-batch Adam (sparse Adam for the bags when ``cfg["sparse"]``) with a fixed seed on one thread,
so a retrain on the same data gives bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.category.features import PieceEncoder, batch_features, token_feature_ids, tokens

Features = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class FastTextClassifier(nn.Module):
    def __init__(
        self, num_buckets: int, dim: int, num_classes: int, pieces: int = 0, piece_dim: int = 0,
        piece_scale: float = 1.0, sparse: bool = False,
    ) -> None:
        super().__init__()
        if dim + piece_dim <= 0:
            raise ValueError("the category model needs dim > 0 or piece_dim > 0")
        self.emb = nn.EmbeddingBag(num_buckets, dim, mode="mean", sparse=sparse) if dim else None
        self.pre = nn.EmbeddingBag(pieces, piece_dim, mode="mean", sparse=sparse) if piece_dim else None
        self.piece_factor = piece_scale * math.sqrt(piece_dim) if piece_dim else 0.0
        self.fc = nn.Linear(dim + piece_dim, num_classes)

    def reset_parameters(self, generator: torch.Generator, piece_init: np.ndarray | None = None) -> None:
        # fastText: input vectors uniform in +-1/dim, output layer zero; pieces from the pretrained table.
        with torch.no_grad():
            if self.emb is not None:
                d = self.emb.embedding_dim
                self.emb.weight.uniform_(-1.0 / d, 1.0 / d, generator=generator)
            if self.pre is not None:
                if piece_init is None:
                    raise ValueError("a model with pretrained pieces needs their initial table")
                self.pre.weight.copy_(torch.from_numpy(np.ascontiguousarray(piece_init[:, : self.pre.embedding_dim])))
            self.fc.weight.zero_()
            self.fc.bias.zero_()

    def forward(
        self, ids_F: torch.Tensor, offsets_B: torch.Tensor, pids_P: torch.Tensor | None = None,
        poffsets_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = []
        if self.emb is not None:
            parts.append(self.emb(ids_F, offsets_B))
        if self.pre is not None:
            v = self.pre(pids_P, poffsets_B)
            parts.append(v * (self.piece_factor / (v.norm(dim=1, keepdim=True) + 1e-6)))
        return self.fc(parts[0] if len(parts) == 1 else torch.cat(parts, 1))


_ENCODERS: dict[str, PieceEncoder] = {}


def piece_encoder(cfg: dict) -> PieceEncoder | None:
    """The per-process piece encoder of a config with pretrained pieces (None without)."""
    if not cfg.get("piece_dim"):
        return None
    if "wordllama" not in _ENCODERS:
        _ENCODERS["wordllama"] = PieceEncoder()
    return _ENCODERS["wordllama"]


def featurize(texts: Sequence[str], cfg: dict) -> Features:
    """(hashed ids, offsets, piece ids, piece offsets) of a batch; each text is tokenized once."""
    enc = piece_encoder(cfg)
    if enc is None:
        ids, offs = batch_features(list(texts), cfg["num_buckets"], cfg["max_chars"], cfg["max_features"])
        return ids, offs, np.zeros(0, dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    toks = [tokens(t or "", cfg["max_chars"]) for t in texts]
    if cfg.get("dim"):
        parts = [token_feature_ids(tk, cfg["num_buckets"], cfg["max_features"]) for tk in toks]
        ids, offs = _flat(parts)
    else:
        ids, offs = np.zeros(0, dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    pids, poffs = _flat([enc.piece_ids(tk) for tk in toks])
    return ids, offs, pids, poffs


def _flat(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts), dtype=np.int64)
    if len(parts) > 1:
        offsets[1:] = np.cumsum(lengths)[:-1]
    ids = np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, dtype=np.int64)
    return ids, offsets


def build_model(cfg: dict) -> FastTextClassifier:
    return FastTextClassifier(
        cfg["num_buckets"], cfg.get("dim", 0), cfg["num_classes"], cfg.get("pieces", 0), cfg.get("piece_dim", 0),
        cfg.get("piece_scale", 1.0), sparse=bool(cfg.get("sparse")),
    )


def train_model(
    texts: Sequence[str],
    labels: Sequence[int],
    cfg: dict,
    sample_weights: Sequence[float] | None = None,
    log: Callable[[str], None] = print,
    piece_init: np.ndarray | None = None,
) -> FastTextClassifier:
    """Train on ``texts``/``labels`` with hyper-parameters from ``cfg`` (num_buckets, dim, num_classes,
    epochs, lr, batch_size, seed, weight_decay, max_chars, max_features; pieces, piece_dim, piece_scale,
    sparse). ``piece_init``: the pretrained piece table (needed when ``piece_dim``). Deterministic for a seed."""
    torch.set_num_threads(1)  # bit-reproducible: reductions do not depend on the core count
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    model = build_model(cfg)
    model.reset_parameters(gen, piece_init)
    feats = [featurize([t], cfg) for t in texts]
    y = torch.tensor(list(labels), dtype=torch.long)
    w = torch.tensor(list(sample_weights) if sample_weights is not None else [1.0] * len(feats))
    lr, wd = cfg["lr"], cfg.get("weight_decay", 0.0)
    if cfg.get("sparse"):
        bags = [m.weight for m in (model.emb, model.pre) if m is not None]
        opts = [torch.optim.SparseAdam(bags, lr=lr), torch.optim.Adam(model.fc.parameters(), lr=lr, weight_decay=wd)]
    else:
        opts = [torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)]
    n, bs, epochs = len(feats), int(cfg["batch_size"]), int(cfg["epochs"])
    steps = epochs * math.ceil(n / bs)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: max(0.0, 1.0 - s / steps)) for o in opts]  # fastText decay
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).tolist()
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            ids, offs = _flat([feats[j][0] for j in idx])
            pids, poffs = _flat([feats[j][2] for j in idx])
            logits = model(torch.from_numpy(ids), torch.from_numpy(offs), torch.from_numpy(pids), torch.from_numpy(poffs))
            loss_b = nn.functional.cross_entropy(logits, y[idx], reduction="none", label_smoothing=0.05)
            loss = (loss_b * w[idx]).sum() / w[idx].sum()
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
            for s in scheds:
                s.step()
            total += float(loss.detach()) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}  loss {total / max(n, 1):.4f}")
    model.eval()
    return model


def pretrained_pieces() -> np.ndarray:
    """float32 [32000, 256] WordLlama token embeddings, read from the installed wheel (no download)."""
    from safetensors.numpy import load_file

    from pipeline.category.features import wordllama_files

    return load_file(wordllama_files()[1])["embedding.weight"].astype(np.float32)
