"""Train a dots.llm1-style MoE on token shards.

    python -m jobs.train_moe --data SHARDS --config conf/moe/small.yaml --steps 1000 --out runs/small
    torchrun --nproc-per-node 8 -m jobs.train_moe --data SHARDS --config conf/moe/small.yaml ...

Reads top to bottom: arguments, distributed setup, config, model, optimizer + schedule, data,
resume, loop. Writes RUN_DIR/metrics.jsonl (one JSON object per logged step) and checkpoints under
RUN_DIR/ckpt/; rerunning the same command resumes from the latest checkpoint and reproduces the
losses an uninterrupted run would have logged. Torch only: it never imports pyspark (GPU machines
usually have no Java).
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import contextlib
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel as DDP

from models.moe.config import load_moe_config
from models.moe.data import make_loader
from models.moe.model import MoETransformer, count_params, flops_per_token, peak_flops
from pipeline.tokenize.synthetic import SyntheticBatches


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs.train_moe", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True,
                   help="token shard folder (with index.json) made by jobs.tokenize, or synthetic:VOCAB for "
                        "random tokens (timing the model alone)")
    p.add_argument("--config", required=True, help="conf/moe/NAME.yaml (sections model: and train:)")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps of the run")
    p.add_argument("--out", required=True, help="run folder: metrics.jsonl, ckpt/, config.json")
    p.add_argument("--cache-dir", default=None, help="local cache of s3:// and https:// inputs (docs/OBJECT_STORAGE.md)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key, e.g. train.lr=1e-3 or model.num_layers=4")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="checkpoint and exit after this step (the schedule still spans --steps); "
                        "for time-limited allocations: rerun the same command to continue")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--no-resume", action="store_true", help="refuse to start if RUN_DIR has a checkpoint")
    return p.parse_args(argv)


def parse_overrides(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {"model": {}, "train": {}}
    for item in items:
        key, sep, raw = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in out or not name:
            raise ValueError(f"--set {item!r}: expected model.KEY=VALUE or train.KEY=VALUE")
        out[section][name] = yaml.safe_load(raw)
    return out


def lr_at(step: int, total: int, peak: float, warmup: int, decay_frac: float, min_ratio: float) -> float:
    """Warmup-Stable-Decay (Hu et al. 2024, MiniCPM; used by dots.llm1): linear warmup, a long flat
    stage, then a linear decay over the last ``decay_frac`` of the steps to ``min_ratio * peak``.
    The flat stage lets a run be extended later by branching a new decay off any stable checkpoint."""
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = max(1, round(total * decay_frac)) if decay_frac > 0 else 0
    decay_start = total - decay_steps
    if decay_steps == 0 or step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start + 1) / decay_steps)
    return peak * (1.0 - (1.0 - min_ratio) * progress)


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int) -> None:
    """Write ckpt/step_NNNNNNN.pt via a temp file + rename, then point ckpt/latest at it."""
    ckpt_dir = run_dir / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step_{step:07d}.pt"
    tmp = final.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, final)
    latest_tmp = ckpt_dir / "latest.tmp"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, ckpt_dir / "latest")
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "ckpt" / "latest"
    return run_dir / "ckpt" / pointer.read_text().strip() if pointer.exists() else None


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the job; s3:// and https:// inputs are staged into a local cache and an s3:// output is
    written locally, then published (pipeline.storage.staging; ``--cache-dir DIR``)."""
    from pipeline.storage.staging import remote_io

    return remote_io(argv, _main, inputs=("--data",), outputs=("--out",), publish=os.environ.get("RANK", "0") == "0")


def _main(argv: list[str]) -> list[dict]:
    args = parse_args(argv)
    run_dir = Path(args.out)

    # ------------------------------------------------------------ distributed setup
    # torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; plain `python -m` is a world of one.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0

    # ------------------------------------------------------------ config
    model_cfg, train = load_moe_config(args.config, parse_overrides(args.set))
    synthetic = args.data.startswith("synthetic:")
    if synthetic:
        index = {"vocab_size": int(args.data.split(":", 1)[1])}
    else:
        from pipeline.tokenize.loader import read_index  # pyarrow only when reading shards

        index = read_index(args.data)
    if model_cfg.vocab_size == 0:
        # Round up to a multiple of 128: matmul tiles stay full and the logits stay aligned.
        model_cfg = dataclasses.replace(model_cfg, vocab_size=-(-int(index["vocab_size"]) // 128) * 128)
    if model_cfg.vocab_size < int(index["vocab_size"]):
        raise ValueError(f"model.vocab_size={model_cfg.vocab_size} < the shards' vocab {index['vocab_size']}")
    if train.seq_len > model_cfg.max_seq_len:
        raise ValueError(f"train.seq_len={train.seq_len} > model.max_seq_len={model_cfg.max_seq_len}")
    # bf16 autocast on GPU: matmuls in bf16, master weights/optimizer in fp32, router in fp32.
    use_bf16 = train.bf16 and device.type == "cuda"

    # ------------------------------------------------------------ model
    torch.manual_seed(train.seed)  # same init on every rank; DDP also broadcasts rank 0's weights
    with torch.device(device):
        raw_model = MoETransformer(model_cfg)
    model = DDP(raw_model, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False) if world > 1 else raw_model
    # broadcast_buffers=False: the balancing bias is updated identically on every rank from all-reduced loads.
    params = count_params(model_cfg)
    tokens_per_step = train.micro_batch * train.seq_len * train.grad_accum * world
    flops_tok = flops_per_token(model_cfg, train.seq_len)
    peak = peak_flops(device, train.peak_tflops)

    # ------------------------------------------------------------ optimizer
    # AdamW as dots.llm1: betas (0.9, 0.95), weight decay 0.1 on matrices only (norm gains stay free).
    decay = [p for p in raw_model.parameters() if p.dim() >= 2]
    no_decay = [p for p in raw_model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=train.lr, betas=(train.beta1, train.beta2), eps=train.eps,
        fused=device.type == "cuda",
    )

    # ------------------------------------------------------------ resume
    start_step, tokens_seen = 0, 0
    ckpt_path = latest_checkpoint(run_dir)
    if ckpt_path is not None:
        if args.no_resume:
            raise SystemExit(f"{run_dir} has a checkpoint ({ckpt_path.name}); drop --no-resume or pick a new --out")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        for key, now in (("world", world), ("micro_batch", train.micro_batch), ("grad_accum", train.grad_accum),
                         ("seq_len", train.seq_len)):
            if ckpt["layout"][key] != now:
                raise ValueError(f"cannot resume {ckpt_path}: {key} was {ckpt['layout'][key]}, now {now}")
        raw_model.load_state_dict(ckpt["model"])  # includes every layer's expert_bias buffer
        optimizer.load_state_dict(ckpt["optimizer"])
        start_step, tokens_seen = ckpt["step"], ckpt["tokens"]
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if master:
            print(f"[train_moe] resumed from {ckpt_path} at step {start_step}", flush=True)
        del ckpt

    # ------------------------------------------------------------ data
    # One batch per micro step; the position of step s is s * grad_accum on every rank.
    if synthetic:
        packed = SyntheticBatches(index["vocab_size"], train.seq_len, train.micro_batch, rank, train.seed)
    else:
        from pipeline.tokenize.loader import PackedShards

        packed = PackedShards(args.data, train.seq_len, train.micro_batch, rank, world, seed=train.seed,
                              shuffle=train.shuffle)
    loader = iter(make_loader(packed, start_step * train.grad_accum, train.num_workers, device.type == "cuda"))

    # ------------------------------------------------------------ bookkeeping
    metrics_path = run_dir / "metrics.jsonl"
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(
            {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train), "data": args.data,
             "world": world, "params": params, "flops_per_token": flops_tok}, indent=2))
        if metrics_path.exists():  # drop lines logged after the checkpoint we resume from
            kept = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= start_step]
            metrics_path.write_text("".join(ln + "\n" for ln in kept))
        print(f"[train_moe] params total {params['total']/1e6:.1f}M active {params['active']/1e6:.1f}M, "
              f"{tokens_per_step} tokens/step, device {device}, world {world}, bf16 {use_bf16}", flush=True)
    history: list[dict] = []

    # ------------------------------------------------------------ loop
    t_last = time.perf_counter()
    tokens_since = 0
    last_step = min(args.steps, args.stop_at) if args.stop_at else args.steps
    for step in range(start_step, last_step):
        lr = lr_at(step, args.steps, train.lr, train.warmup_steps, train.decay_frac, train.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        aux_sum = torch.zeros((), device=device)
        for micro in range(train.grad_accum):
            k, batch = next(loader)
            assert k == step * train.grad_accum + micro, "loader out of step"  # resume bookkeeping
            batch = batch.to(device, non_blocking=True)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            # Only the last micro step all-reduces gradients (DDP no_sync saves grad_accum-1 reductions).
            sync = world == 1 or micro == train.grad_accum - 1
            ctx = model.no_sync() if not sync else contextlib.nullcontext()
            with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss, aux = model(inputs, targets)
                ((loss + aux) / train.grad_accum).backward()
            loss_sum += loss.detach()
            aux_sum += aux.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), train.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # Loss-free balancing: after the optimizer step, outside forward (DeepSeek-V3 sec. 2.1.2).
        loads = raw_model.update_expert_bias()
        tokens_seen += tokens_per_step
        tokens_since += tokens_per_step
        done = step + 1

        if done % train.log_every == 0 or done == last_step:
            stats = torch.stack([loss_sum / train.grad_accum, aux_sum / train.grad_accum])
            if world > 1:
                dist.all_reduce(stats)
                stats /= world
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            tps = tokens_since / (now - t_last)
            t_last, tokens_since = now, 0
            imbalance = [float(ld.max() / ld.mean().clamp_min(1e-9)) for ld in loads]
            row = {
                "step": done,
                "loss": float(stats[0]),
                "aux_loss": float(stats[1]),
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens": tokens_seen,
                "tokens_per_s": tps,
                "mfu": tps * flops_tok / (peak * world) if peak else None,
                # max/mean tokens per expert (1.0 = perfectly balanced), mean and worst over MoE layers
                "load_imbalance": sum(imbalance) / len(imbalance) if imbalance else None,
                "load_imbalance_max": max(imbalance) if imbalance else None,
                "max_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            }
            history.append(row)
            if master:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                mfu = f" mfu {row['mfu']:.3f}" if row["mfu"] is not None else ""
                print(f"step {done:6d} loss {row['loss']:.4f} aux {row['aux_loss']:.2e} lr {lr:.2e} "
                      f"{tps:,.0f} tok/s{mfu} imbalance {row['load_imbalance'] or 0:.2f}", flush=True)

        periodic = train.ckpt_every > 0 and done % train.ckpt_every == 0
        if master and train.ckpt_every >= 0 and (periodic or done == last_step):
            save_checkpoint(run_dir, done, {
                "step": done,
                "tokens": tokens_seen,
                "model": raw_model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "data": {"next_batch": done * train.grad_accum},
                "layout": {"world": world, "micro_batch": train.micro_batch, "grad_accum": train.grad_accum,
                           "seq_len": train.seq_len},
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                        "numpy": np.random.get_state(), "python": random.getstate()},
            }, train.keep_ckpts)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return history


if __name__ == "__main__":
    main(sys.argv[1:])
