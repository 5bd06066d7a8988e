"""Shard loader: zero-copy memory maps, packing, rank/worker split without overlap, resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from pipeline.tokenize.loader import PackedShards
from pipeline.tokenize.shards import ShardWriter, build_index, write_index
from pipeline.tokenize.tokenizer import TokenizerInfo


def write_random_shards(folder, n_docs: int, tokens_per_shard: int, seed: int = 0, vocab: int = 1000,
                        max_len: int = 50, eos: int = 0) -> dict:
    """Shards of random documents through the real writer (no tokenizer needed)."""
    rng = np.random.default_rng(seed)
    writer = ShardWriter(str(folder), "shard-00000", tokens_per_shard)
    lengths = rng.integers(1, max_len, n_docs)
    ids = rng.integers(1, vocab, int(lengths.sum())).astype(np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate([np.append(ids[starts[i] : starts[i + 1]], np.uint32(eos)) for i in range(n_docs)])
    writer.add(flat, lengths + 1, [f"d{i}" for i in range(n_docs)])
    shards = writer.close()
    info = TokenizerInfo(None, "random", "0" * 64, "<eos>", eos, vocab)
    index = build_index(info, "none", shards)
    write_index(str(folder), index)
    return index


def test_windows_cover_the_stream_exactly(tmp_path):
    index = write_random_shards(tmp_path, 300, tokens_per_shard=1000)
    assert len(index["shards"]) > 3
    stream = []
    for s in index["shards"]:
        with pa.memory_map(str(tmp_path / s["file"])) as src:
            stream.append(pa.ipc.open_file(src).read_all().column("input_ids").combine_chunks().values.to_numpy())
    stream = np.concatenate(stream).astype(np.int64)
    seq = 37
    packed = PackedShards(tmp_path, seq, batch_size=2, shuffle=False)
    assert packed.num_samples == (len(stream) - 1) // seq
    for i in range(packed.num_samples):  # windows cross record batches and shards
        assert np.array_equal(packed.tokens(i * seq, seq + 1), stream[i * seq : i * seq + seq + 1])
    b = packed.batch(3)
    assert b.shape == (2, seq + 1) and b.dtype == np.int64
    assert np.array_equal(b[0], stream[6 * seq : 7 * seq + 1])


def test_ranks_and_workers_split_without_overlap(tmp_path):
    write_random_shards(tmp_path, 400, tokens_per_shard=2000)
    world, bs, workers = 3, 4, 2
    ranks = [PackedShards(tmp_path, 16, bs, rank=r, world_size=world, seed=5) for r in range(world)]
    per_epoch = ranks[0].batches_per_epoch
    assert per_epoch == ranks[0].num_samples // (world * bs)
    seen = []
    for p in ranks:
        got = {}
        for w in range(workers):
            it = p.iter_batches(start=0, worker=w, num_workers=workers)
            for _ in range(per_epoch // workers + 1):
                k, batch = next(it)
                assert k % workers == w
                got[k] = p.sample_ids(k)
        ks = sorted(got)
        assert ks[: per_epoch] == list(range(per_epoch))  # workers' union = the rank's stream
        seen.extend(np.concatenate([got[k] for k in range(per_epoch)]).tolist())
    assert len(seen) == len(set(seen)) == per_epoch * world * bs  # no sample twice in an epoch
    # the next epoch reshuffles
    assert not np.array_equal(ranks[0].sample_ids(0), ranks[0].sample_ids(per_epoch))


def test_resume_reproduces_the_stream(tmp_path):
    write_random_shards(tmp_path, 200, tokens_per_shard=5000)
    p = PackedShards(tmp_path, 16, 2, seed=1)
    full = [b for _, b in zip(range(12), (b for _, b in p.iter_batches(0)))]
    again = PackedShards(tmp_path, 16, 2, seed=1)
    resumed = [b for _, b in zip(range(5), (b for _, b in again.iter_batches(7)))]
    for a, b in zip(full[7:], resumed):
        assert np.array_equal(a, b)


def test_torch_dataloader_workers_keep_order(tmp_path):
    import torch

    from models.moe.data import make_loader

    write_random_shards(tmp_path, 200, tokens_per_shard=3000)
    p = PackedShards(tmp_path, 16, 2, seed=2)
    it = iter(make_loader(p, start=4, num_workers=2, pin_memory=False))
    for expect in range(4, 10):
        k, batch = next(it)
        assert k == expect and torch.equal(batch, torch.from_numpy(p.batch(expect)))


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc for RSS")
def test_opening_a_large_shard_is_zero_copy(tmp_path):
    # ~200 MB of tokens in one shard, written in chunks so the writer itself stays small
    n_tokens = 50_000_000
    writer = ShardWriter(str(tmp_path), "shard-00000", n_tokens * 2)
    chunk = np.arange(1_000_000, dtype=np.uint32)
    for i in range(n_tokens // len(chunk)):
        lengths = np.full(100, 10_000, dtype=np.int64)
        writer.add(chunk, lengths, [f"d{i}-{j}" for j in range(100)])
    shards = writer.close()
    info = TokenizerInfo(None, "random", "0" * 64, "<eos>", 0, 1 << 20)
    write_index(str(tmp_path), build_index(info, "none", shards))
    assert json.loads((tmp_path / "index.json").read_text())["tokens"] == n_tokens
    del writer, chunk

    arrow_before, rss_before = pa.total_allocated_bytes(), _rss_bytes()
    p = PackedShards(tmp_path, 1024, 8, seed=0)
    batch = p.batch(123)
    arrow_grown = pa.total_allocated_bytes() - arrow_before
    rss_grown = _rss_bytes() - rss_before
    assert batch.shape == (8, 1025)
    # 200 MB of shard, but opening and reading a batch allocates next to nothing
    assert arrow_grown < 1 << 20, arrow_grown
    assert rss_grown < 32 << 20, rss_grown
    assert p._segments[0].base is not None  # a view, not an owned copy
