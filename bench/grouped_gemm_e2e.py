"""End to end: jobs.train_moe with the fused expert kernels vs the reference expert path (GPU).

    python -m bench.grouped_gemm_e2e --out /tmp/e2e [--config conf/moe/small.yaml] [--steps 200]

Writes a synthetic token-shard folder (no tokenizer needed): documents drawn from a fixed pool of
random token sequences, so the loss falls steadily as the model memorises the pool. Then runs the
trainer twice from the same seed, once with ``DOTS_GROUPED_MLP=fused`` and once with
``DOTS_GROUPED_MLP=reference``, and prints tokens/s and MFU (median over logged steps after the
first tenth) and how far the two loss curves are apart compared with the curves' own step-to-step
noise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np


def make_shards(folder: Path, tokens: int, vocab: int, seed: int = 0) -> None:
    """A shard folder of ``tokens`` tokens: documents are copies of 1024 random 256-token sequences."""
    from pipeline.tokenize.shards import ShardWriter, build_index, write_index

    if (folder / "index.json").exists():
        return
    rng = np.random.default_rng(seed)
    doc_len = 256
    pool = rng.integers(1, vocab, size=(1024, doc_len - 1), dtype=np.uint32)
    pool = np.concatenate([pool, np.zeros((1024, 1), dtype=np.uint32)], axis=1)  # EOS id 0 at the end
    n_docs = tokens // doc_len
    ids = pool[rng.integers(0, len(pool), size=n_docs)].reshape(-1)
    writer = ShardWriter(str(folder), "shard", tokens_per_shard=1 << 24)
    writer.add(ids, np.full(n_docs, doc_len, dtype=np.int64), [f"synthetic-{i}" for i in range(n_docs)])
    info = types.SimpleNamespace(name="synthetic-pool", sha256="0" * 64, eos_token="<eos>", eos_id=0,
                                 vocab_size=vocab)
    write_index(str(folder), build_index(info, "synthetic", writer.close()))


def run_trainer(impl: str, data: Path, out: Path, config: str, steps: int, extra: list[str]) -> list[dict]:
    env = dict(os.environ, DOTS_GROUPED_MLP=impl, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "jobs.train_moe", "--data", str(data), "--config", config, "--steps", str(steps),
           "--out", str(out), "--no-resume", "--set", "train.ckpt_every=0", *extra]
    print(f"[e2e] {impl}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="conf/moe/small.yaml")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--tokens", type=int, default=16 << 20, help="synthetic corpus size")
    ap.add_argument("--set", action="append", default=[], help="extra trainer overrides (train.micro_batch=8)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = out / "shards"
    make_shards(data, tokens=args.tokens, vocab=args.vocab)
    extra = [x for s in args.set for x in ("--set", s)]
    runs = {impl: run_trainer(impl, data, out / impl, args.config, args.steps, extra)
            for impl in ("fused", "reference")}
    skip = max(1, len(runs["fused"]) // 10)
    summary = {}
    for impl, rows in runs.items():
        tps = [r["tokens_per_s"] for r in rows[skip:]]
        mfu = [r["mfu"] for r in rows[skip:] if r.get("mfu") is not None]
        summary[impl] = {"tokens_per_s": float(np.median(tps)), "mfu": float(np.median(mfu)) if mfu else None,
                         "final_loss": rows[-1]["loss"]}
    lf = np.array([r["loss"] for r in runs["fused"]])
    lr_ = np.array([r["loss"] for r in runs["reference"]])
    n = min(len(lf), len(lr_))
    diff = np.abs(lf[:n] - lr_[:n])
    noise = float(np.median(np.abs(np.diff(lr_[:n]))))  # step-to-step wiggle of the reference curve
    summary["loss_abs_diff_max"] = float(diff.max())
    summary["loss_abs_diff_mean"] = float(diff.mean())
    summary["reference_step_noise"] = noise
    summary["speedup_tokens_per_s"] = summary["fused"]["tokens_per_s"] / summary["reference"]["tokens_per_s"]
    print(json.dumps(summary, indent=1))
    (out / "e2e_summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
