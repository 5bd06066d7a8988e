"""The trainer on CPU: loss falls on shards made by the tokenize core, exact resume, WSD, no pyspark."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
import torch

from jobs.train_moe import lr_at, main
from pipeline.tokenize.shards import tokenize_table
from pipeline.tokenize.tokenizer import info_from_tokenizer, train_bpe
from tests.test_tokenize import CORPUS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    info = info_from_tokenizer(train_bpe(CORPUS, vocab_size=600), "test-bpe")
    table = pa.table({"doc_id": [f"d{i}" for i in range(len(CORPUS))], "text": CORPUS})
    tokenize_table(table, str(folder), info, seed=0, tokens_per_shard=20_000)
    return str(folder)


def train(shards, out, steps, *sets, stop_at=None):
    argv = ["--data", shards, "--config", "conf/moe/tiny.yaml", "--steps", str(steps), "--out", str(out)]
    if stop_at:
        argv += ["--stop-at", str(stop_at)]
    for s in sets:
        argv += ["--set", s]
    return main(argv)


def test_loss_falls(shards, tmp_path):
    hist = train(shards, tmp_path / "run", 40, "train.seq_len=32", "train.warmup_steps=3")
    losses = [h["loss"] for h in hist]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < losses[0] - 1.5, losses
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))
    for key in ("loss", "tokens_per_s", "mfu", "load_imbalance", "aux_loss", "lr", "grad_norm"):
        assert key in rows[-1]
    assert rows[-1]["load_imbalance"] >= 1.0 and rows[-1]["tokens_per_s"] > 0
    ckpt = torch.load(tmp_path / "run" / "ckpt" / "step_0000040.pt", weights_only=False)
    bias = ckpt["model"]["layers.1.ffn.expert_bias"]
    assert bias.abs().sum() > 0  # loss-free balancing moved the bias and it is checkpointed


def test_resume_reproduces_the_next_losses_exactly(shards, tmp_path):
    common = ("train.seq_len=32", "train.grad_accum=2", "train.ckpt_every=2", "train.warmup_steps=2")
    straight = train(shards, tmp_path / "a", 7, *common)
    first = train(shards, tmp_path / "b", 7, *common, stop_at=3)
    assert [h["loss"] for h in first] == [h["loss"] for h in straight[:3]]
    resumed = train(shards, tmp_path / "b", 7, *common)
    assert [h["step"] for h in resumed] == [4, 5, 6, 7]
    assert [h["loss"] for h in resumed] == [h["loss"] for h in straight[3:]]
    assert [h["aux_loss"] for h in resumed] == [h["aux_loss"] for h in straight[3:]]
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 8))
    a = torch.load(tmp_path / "a" / "ckpt" / "step_0000007.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "ckpt" / "step_0000007.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="grad_accum"):
        train(shards, tmp_path / "b", 9, "train.seq_len=32", "train.grad_accum=1")


def test_wsd_schedule():
    lrs = [lr_at(s, 100, 1.0, 10, 0.2, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x == 1.0 for x in lrs[10:80])  # stable
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # decay
    assert lrs[-1] == pytest.approx(0.1)


def test_trainer_never_imports_pyspark():
    code = "import sys, jobs.train_moe; bad = [m for m in sys.modules if m.startswith('pyspark')]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".")


@pytest.mark.slow
def test_two_ranks_with_torchrun_on_cpu(shards, tmp_path):
    """DDP over gloo: both ranks step together, loads are all-reduced, rank 0 writes the run folder."""
    import os
    import shutil

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    cmd = [torchrun, "--nproc-per-node", "2", "--master-port", "29561", "-m", "jobs.train_moe", "--data", shards,
           "--config", "conf/moe/tiny.yaml", "--steps", "3", "--out", str(tmp_path / "ddp"), "--device", "cpu",
           "--set", "train.seq_len=32", "--set", "train.grad_accum=2"]
    proc = subprocess.run(cmd, cwd=".", timeout=600, capture_output=True, text=True)
    assert proc.returncode == 0, f"torchrun exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["tokens"] == 2 * 2 * 4 * 32  # ranks x grad_accum x micro_batch x seq_len
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world"] == 2
