"""The model input of a batch, as NumPy arrays (what the torch models in ``models/`` consume).

Shapes (``N`` items = lines for clutter, documents for quality; ``T`` hashed n-grams in total):
``ids [T] int64`` bucket ids, ``offsets [N] int64`` start of each item's ids (EmbeddingBag layout),
``feats [N, F] float32`` dense features, ``prev/next [N] int64`` index of the neighbouring item in the
same document or -1 (the clutter model's context), ``labels [N] float32`` when known.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Features:
    ids: np.ndarray
    offsets: np.ndarray
    feats: np.ndarray
    prev: np.ndarray
    next: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    @staticmethod
    def build(
        id_lists: list[list[int]],
        feats: np.ndarray,
        prev: np.ndarray | None = None,
        next_: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> Features:
        n = len(id_lists)
        lengths = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=n)
        offsets = np.zeros(n, dtype=np.int64)
        if n > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        ids = np.fromiter((i for x in id_lists for i in x), dtype=np.int64, count=int(lengths.sum()))
        none = np.full(n, -1, dtype=np.int64)
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != n:
            raise ValueError(f"feats must be [N={n}, F], got shape {feats.shape}")
        return Features(
            ids=ids,
            offsets=offsets,
            feats=feats,
            prev=none if prev is None else np.asarray(prev, dtype=np.int64),
            next=none.copy() if next_ is None else np.asarray(next_, dtype=np.int64),
            labels=None if labels is None else np.asarray(labels, dtype=np.float32),
        )

    def slice(self, start: int, stop: int) -> Features:
        """Items ``[start, stop)``; neighbour indices outside the slice become -1."""
        start, stop = max(0, start), min(len(self), stop)
        id_start = int(self.offsets[start]) if start < len(self) else len(self.ids)
        id_stop = int(self.offsets[stop]) if stop < len(self) else len(self.ids)

        def rebase(a: np.ndarray) -> np.ndarray:
            a = a[start:stop] - start
            a[(a < 0) | (a >= stop - start)] = -1
            return a

        return Features(
            ids=self.ids[id_start:id_stop],
            offsets=self.offsets[start:stop] - id_start,
            feats=self.feats[start:stop],
            prev=rebase(self.prev),
            next=rebase(self.next),
            labels=None if self.labels is None else self.labels[start:stop],
        )

    @staticmethod
    def concat(parts: list[Features]) -> Features:
        if not parts:
            raise ValueError("Features.concat needs at least one part")
        ids, offsets, prev, nxt = [], [], [], []
        n_items = n_ids = 0
        for p in parts:
            ids.append(p.ids)
            offsets.append(p.offsets + n_ids)
            prev.append(np.where(p.prev >= 0, p.prev + n_items, -1))
            nxt.append(np.where(p.next >= 0, p.next + n_items, -1))
            n_items += len(p)
            n_ids += len(p.ids)
        labels = None
        if all(p.labels is not None for p in parts):
            labels = np.concatenate([p.labels for p in parts])
        return Features(
            ids=np.concatenate(ids),
            offsets=np.concatenate(offsets),
            feats=np.concatenate([p.feats for p in parts]),
            prev=np.concatenate(prev),
            next=np.concatenate(nxt),
            labels=labels,
        )
