"""Torch side of the shard loader: an IterableDataset whose workers split a rank's batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class ShardBatches(IterableDataset):
    """Yields ``(k, tokens [B, S+1] int64)`` for ``k = start, start+1, ...`` of one rank.

    ``packed`` is a ``pipeline.tokenize.loader.PackedShards`` (or ``SyntheticBatches``).

    Worker ``w`` of ``W`` makes batches ``start+w, start+w+W, ...``; ``DataLoader`` takes from its
    workers round-robin, so the output order is ``start, start+1, ...`` whatever ``W`` is.
    """

    def __init__(self, packed: Any, start: int = 0) -> None:
        self.packed, self.start = packed, start

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k, batch in self.packed.iter_batches(self.start, worker, workers):
            yield k, torch.from_numpy(batch)


def make_loader(packed: Any, start: int, num_workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(
        ShardBatches(packed, start),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )
