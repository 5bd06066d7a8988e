"""The category classifier: hashed n-gram EmbeddingBag + linear layer (fastText, Joulin et al., 2017).

Shapes: ``ids`` [F] int64 bucket ids of all documents of a batch, ``offsets`` [B] int64 start of each
document in ``ids``; ``EmbeddingBag(mean)`` gives [B, D]; the linear layer gives logits [B, C].
Small (buckets x D embedding, stored as float16: 2^17 x 32 = 8 MB), fast on CPU, trivially batched
on GPU. The training loop is plain mini-batch Adam with a fixed seed and one thread, so a retrain on
the same data gives bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.category.features import batch_features


class FastTextClassifier(nn.Module):
    def __init__(self, num_buckets: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(num_buckets, dim, mode="mean")
        self.fc = nn.Linear(dim, num_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        # fastText: input vectors uniform in +-1/dim, output layer zero.
        d = self.emb.embedding_dim
        with torch.no_grad():
            self.emb.weight.uniform_(-1.0 / d, 1.0 / d, generator=generator)
            self.fc.weight.zero_()
            self.fc.bias.zero_()

    def forward(self, ids_F: torch.Tensor, offsets_B: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids_F, offsets_B))


def featurize(texts: Sequence[str], cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    return batch_features(list(texts), cfg["num_buckets"], cfg["max_chars"], cfg["max_features"])


def train_model(
    texts: Sequence[str],
    labels: Sequence[int],
    cfg: dict,
    sample_weights: Sequence[float] | None = None,
    log: Callable[[str], None] = print,
) -> FastTextClassifier:
    """Train on ``texts``/``labels`` with hyper-parameters from ``cfg`` (num_buckets, dim, num_classes,
    epochs, lr, batch_size, seed, weight_decay, max_chars, max_features). Deterministic for a seed."""
    torch.set_num_threads(1)  # bit-reproducible: reductions do not depend on the core count
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    model = FastTextClassifier(cfg["num_buckets"], cfg["dim"], cfg["num_classes"])
    model.reset_parameters(gen)
    feats = [featurize([t], cfg)[0] for t in texts]
    y = torch.tensor(list(labels), dtype=torch.long)
    w = torch.tensor(list(sample_weights) if sample_weights is not None else [1.0] * len(feats))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    n, bs, epochs = len(feats), int(cfg["batch_size"]), int(cfg["epochs"])
    steps = epochs * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))  # fastText decay
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).tolist()
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            ids = np.concatenate([feats[j] for j in idx])
            lens = np.array([len(feats[j]) for j in idx], dtype=np.int64)
            offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
            logits = model(torch.from_numpy(ids), torch.from_numpy(offs))
            loss_b = nn.functional.cross_entropy(logits, y[idx], reduction="none", label_smoothing=0.05)
            loss = (loss_b * w[idx]).sum() / w[idx].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}  loss {total / max(n, 1):.4f}")
    model.eval()
    return model
