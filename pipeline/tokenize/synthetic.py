"""Random-token shards for trainer benchmarks and smoke runs (no tokenizer, no Spark).

    python -m pipeline.tokenize.synthetic --out /tmp/shards --tokens 50000000 --vocab 32000

Documents have uniform random lengths and end in EOS (id 0); the index.json says
``tokenizer.name = "synthetic"`` so nobody mistakes them for text. :class:`SyntheticBatches` makes
the same kind of batches in memory (``train_moe --data synthetic:VOCAB``) for machines without
pyarrow or to time the model alone.
"""

from __future__ import annotations

import argparse

import numpy as np


class SyntheticBatches:
    """Random batches with the interface of ``PackedShards`` (``batch(k)``, ``iter_batches``)."""

    def __init__(self, vocab: int, seq_len: int, batch_size: int, rank: int = 0, seed: int = 0) -> None:
        self.index = {"vocab_size": vocab, "tokens": 0, "shards": []}
        self.vocab, self.seq_len, self.batch_size, self.rank, self.seed = vocab, seq_len, batch_size, rank, seed

    def batch(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.rank, k])
        return rng.integers(1, self.vocab, (self.batch_size, self.seq_len + 1), dtype=np.int64)

    def iter_batches(self, start: int = 0, worker: int = 0, num_workers: int = 1):
        k = start + worker
        while True:
            yield k, self.batch(k)
            k += num_workers


def write_synthetic_shards(
    out: str, tokens: int, vocab: int, tokens_per_shard: int = 1 << 27, mean_doc: int = 1000, seed: int = 0
) -> dict:
    from pipeline.tokenize.shards import ShardWriter, build_index, write_index
    from pipeline.tokenize.tokenizer import TokenizerInfo

    rng = np.random.default_rng(seed)
    writer = ShardWriter(out, "shard-00000", tokens_per_shard)
    written = 0
    while written < tokens:
        n_docs = 1000
        lengths = rng.integers(2, 2 * mean_doc, n_docs).astype(np.int64)
        ids = rng.integers(1, vocab, int(lengths.sum()), dtype=np.uint32)
        ids[np.cumsum(lengths) - 1] = 0  # EOS closes every document
        writer.add(ids, lengths, [f"synthetic-{written}-{i}" for i in range(n_docs)])
        written += int(lengths.sum())
    info = TokenizerInfo(None, "synthetic", "0" * 64, "<eos>", 0, vocab)
    index = build_index(info, "synthetic", writer.close())
    write_index(out, index)
    return index


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--tokens", type=int, default=10_000_000)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--tokens-per-shard", type=int, default=1 << 27)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    index = write_synthetic_shards(a.out, a.tokens, a.vocab, a.tokens_per_shard, seed=a.seed)
    print(f"{index['tokens']:,} tokens in {len(index['shards'])} shard(s) -> {a.out}")


if __name__ == "__main__":
    main()
