"""The clutter model's torch module: line vectors refined by the lines around them.

Legend: ``T`` hashed n-gram ids in the batch, ``N`` lines, ``D`` embedding dims, ``F`` dense features,
``H`` hidden units.

Each line is an ``EmbeddingBag(mean)`` of its hashed n-grams (fastText-style, Joulin et al. 2017)
concatenated with its standardized dense features and projected to ``H``. ``context_layers`` residual
layers then mix each line with its previous and next line (``prev_N`` / ``next_N``; -1 = none): after
``k`` layers a line sees ``k`` lines either way, so the model learns "a short line inside a run of
links" or "a caption between two paragraphs" instead of scoring lines alone (the sequence-labelling
view of boilerplate removal, e.g. Vogels et al. 2018, "Web2Text", which adds neighbour context to
per-block features). Only gathers and row-wise layers: a line's score depends on its own document
only, never on which documents share the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ARCH = "ClutterContextNet"


class ClutterContextNet(nn.Module):
    """Hashed n-gram bag + standardized features -> H, ``context_layers`` neighbour-mixing residual
    layers, -> one logit per line. Same call signature as :class:`models.common.HashedBagMLP`, so the
    shared training loop and ``predict_proba`` drive it."""

    def __init__(self, n_buckets: int, emb_dim: int, n_features: int, hidden: int, context_layers: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.n_buckets, self.emb_dim, self.dropout = n_buckets, emb_dim, dropout
        self.context = True
        self.context_layers = context_layers
        self.bag = nn.EmbeddingBag(n_buckets, emb_dim, mode="mean")
        nn.init.normal_(self.bag.weight, std=0.1)
        self.register_buffer("feat_mean", torch.zeros(n_features))
        self.register_buffer("feat_std", torch.ones(n_features))
        # ``mlp`` is the input projection (models.common.save_model reads mlp[1].out_features).
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(emb_dim + n_features, hidden), nn.ReLU())
        self.mix = nn.ModuleList(nn.Linear(3 * hidden, hidden) for _ in range(context_layers))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, ids_T: torch.Tensor, offsets_N: torch.Tensor, feats_NF: torch.Tensor, prev_N: torch.Tensor,
                next_N: torch.Tensor) -> torch.Tensor:
        emb_ND = self.bag(ids_T, offsets_N)
        h_NH = self.mlp(torch.cat([emb_ND, (feats_NF - self.feat_mean) / self.feat_std], dim=1))
        n = h_NH.shape[0]
        # Row N of the padded matrix is zeros: a missing neighbour (-1) reads it.
        prev_idx = torch.where(prev_N >= 0, prev_N, n)
        next_idx = torch.where(next_N >= 0, next_N, n)
        for layer in self.mix:
            padded = torch.cat([h_NH, h_NH.new_zeros(1, h_NH.shape[1])])
            ctx_N3H = torch.cat([h_NH, padded[prev_idx], padded[next_idx]], dim=1)
            h_NH = h_NH + torch.relu(layer(self.drop(ctx_N3H)))
        return self.head(h_NH).squeeze(1)

    def set_feature_scaling(self, feats: np.ndarray) -> None:
        self.feat_mean.copy_(torch.from_numpy(feats.mean(0)))
        self.feat_std.copy_(torch.from_numpy(feats.std(0) + 1e-3))
