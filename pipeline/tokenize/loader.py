"""Packed-sequence loader over token shards: memory-mapped, sharded over ranks and workers, resumable.

The shards of ``index.json`` (in index order) form one token stream; every document already ends in
EOS. Sample ``i`` is the window ``stream[i*S : i*S + S + 1]`` (inputs ``[:-1]``, targets ``[1:]``),
so every token is predicted exactly once per epoch and a window may span documents and shards.

Batch ``k`` of a rank is ``(epoch, j) = divmod(k, batches_per_epoch)``; it holds the samples
``order[(j*world + rank)*B : ... + B]`` of that epoch's order (a seeded permutation, or identity when
not shuffling). Ranks never share a sample within an epoch, and loader worker ``w`` of ``W`` makes the
batches ``k = w, w+W, ...``, so the workers' union is the rank's stream with no overlap. The position
to save is just the next ``k``: resuming at ``k`` reproduces the stream exactly.

Shards are opened with ``pyarrow.memory_map`` + ``ipc.open_file``: the token buffers are views of the
page cache (zero-copy), so opening terabytes of shards costs only their metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa


def read_index(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "index.json"
    if not path.exists():
        raise ValueError(f"{folder} has no index.json: pass the output folder of the tokenize stage")
    return json.loads(path.read_text(encoding="utf-8"))


class PackedShards:
    """Random access to the packed batches of one data-parallel rank. Picklable (reopens lazily)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        seq_len: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be within [0, world_size={world_size})")
        self.folder = str(folder)
        self.index = read_index(folder)
        self.seq_len, self.batch_size = seq_len, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.total_tokens = int(sum(s["tokens"] for s in self.index["shards"]))
        self.num_samples = max(0, (self.total_tokens - 1) // seq_len)
        self.batches_per_epoch = self.num_samples // (world_size * batch_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{folder}: {self.total_tokens} tokens make {self.num_samples} samples of {seq_len}, fewer "
                f"than one global batch ({world_size} ranks x {batch_size}); lower seq_len/batch or add data"
            )
        self._segments: list[np.ndarray] | None = None
        self._order_epoch = -1
        self._order: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_segments"] = None  # memory maps are reopened in the worker process
        state["_order"], state["_order_epoch"] = None, -1
        return state

    # ------------------------------------------------------------ memory-mapped token stream

    def _open(self) -> list[np.ndarray]:
        if self._segments is None:
            segments = []
            for shard in self.index["shards"]:
                source = pa.memory_map(os.path.join(self.folder, shard["file"]), "r")
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    ids = reader.get_batch(i).column(0)
                    offsets = ids.offsets
                    first, last = offsets[0].as_py(), offsets[-1].as_py()
                    values = ids.values.to_numpy(zero_copy_only=True)[first:last]
                    if values.dtype != np.uint32:
                        raise ValueError(f"{shard['file']}: input_ids must be uint32, got {values.dtype}")
                    if len(values):
                        segments.append(values)
            sizes = np.array([len(s) for s in segments], dtype=np.int64)
            if int(sizes.sum()) != self.total_tokens:
                raise ValueError(f"{self.folder}: shards hold {sizes.sum()} tokens, index.json says {self.total_tokens}")
            self._starts = np.concatenate([[0], np.cumsum(sizes)])
            self._segments = segments
        return self._segments

    def tokens(self, start: int, length: int) -> np.ndarray:
        """``length`` tokens of the stream from ``start`` (a copy; spans segments as needed)."""
        segments = self._open()
        out = np.empty(length, dtype=np.int64)
        seg = int(np.searchsorted(self._starts, start, side="right")) - 1
        filled = 0
        while filled < length:
            s = segments[seg]
            off = start + filled - int(self._starts[seg])
            take = min(length - filled, len(s) - off)
            out[filled : filled + take] = s[off : off + take]
            filled += take
            seg += 1
        return out

    # ------------------------------------------------------------ sample order

    def epoch_order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            n = self.num_samples
            self._order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order_epoch = epoch
        return self._order

    def sample_ids(self, k: int) -> np.ndarray:
        """Global sample numbers of this rank's batch ``k``."""
        epoch, j = divmod(k, self.batches_per_epoch)
        start = (j * self.world_size + self.rank) * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size]

    def batch(self, k: int) -> np.ndarray:
        """This rank's batch ``k``: int64 [batch_size, seq_len + 1]."""
        s = self.seq_len
        return np.stack([self.tokens(int(i) * s, s + 1) for i in self.sample_ids(k)])

    def iter_batches(self, start: int = 0, worker: int = 0, num_workers: int = 1):
        """Batches ``k >= start`` with ``k % num_workers == worker`` (relative to ``start``), forever."""
        k = start + worker
        while True:
            yield k, self.batch(k)
            k += num_workers
