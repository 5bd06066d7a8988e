"""Throughput of the filter stage's predictors (clutter, quality, category) on CPU or CUDA.

    python -m bench.model_speed --device cpu
    python -m bench.model_speed --device cuda --parity          # on the GPU machine (no Spark/Java needed)

Calls the core predictors directly (what the Spark UDF calls per Arrow batch). For each model and batch
size it prints two figures: end-to-end (featurization in Python + model) and model-only (pre-featurized
input, the device's share), plus the GPU utilisation sampled with ``nvidia-smi`` while the model-only
loop runs. The ratio printed against ``cpu`` is GPU/CPU speed on the same numbers when both ran in one
process (``--device both``). Input: synthetic web documents (paragraphs of English and Chinese text
with navigation/share/copyright lines), so the bench needs no shared data.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import threading
import time

import numpy as np
import torch

WORDS = ("the council voted to repair old bridges after heavy rain damaged roads and homes while engineers said "
         "costs would rise next year because steel prices increased sharply across the region").split()
ZH = "国务院今天召开常务会议部署进一步扩大内需的措施专家认为这些措施将有助于稳定经济增长和就业"
CLUTTER = ["Home | News | Sport | Contact", "Share on Facebook | Tweet | Email", "© 2024 Example Media. All rights reserved.",
           "Accept cookies", "Related articles", "首页 | 新闻 | 联系我们", "Next page »"]


def synthetic_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        lines = rng.sample(CLUTTER, 3)
        for _ in range(rng.randint(4, 14)):
            if i % 5 == 0:
                lines.append("".join(rng.choice(ZH) for _ in range(rng.randint(30, 120))) + "。")
            else:
                lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 60))).capitalize() + ".")
        lines += rng.sample(CLUTTER, 2)
        docs.append("\n".join(lines))
    return docs


def _gpu_util_reader():
    """A function returning the GPU's utilisation in %: NVML through ``torch.cuda.utilization`` (needs
    the nvidia-ml-py package), else one ``nvidia-smi`` call per sample; None when neither works."""
    if torch.cuda.is_available():
        try:
            torch.cuda.utilization()
            return lambda: int(torch.cuda.utilization())
        except Exception:  # noqa: BLE001 - no NVML binding here: fall back to nvidia-smi below
            pass

    def smi() -> int:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=2).stdout
        return int(out.split()[0])

    try:
        smi()
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    return smi


class GpuSampler:
    """Samples the GPU utilisation every 50 ms while active (NVML, else ``nvidia-smi``)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        read = _gpu_util_reader()

        def loop() -> None:
            while read is not None and not self._stop.is_set():
                try:
                    self.samples.append(read())
                except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                    return
                time.sleep(0.05)

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._t:
            self._t.join()

    @property
    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return f"mean {np.mean(self.samples):.0f}% max {max(self.samples)}%"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _model_only(p, chunks: list, per_pass: int, device: str, min_s: float) -> tuple[float, GpuSampler]:
    """Items per second of the model step alone: passes over the featurized ``chunks`` (``per_pass``
    items in all) for at least ``min_s`` seconds, with the GPU utilisation sampled meanwhile."""
    from models.common import predict_proba

    with GpuSampler() as gs:
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < min_s:
            for ch in chunks:
                predict_proba(p.model, ch, p.device)
            n += per_pass
        _sync(device)
        return n / (time.perf_counter() - t), gs


def bench_clutter(docs: list[str], device: str, batches: list[int], min_s: float) -> list[dict]:
    """Clutter predictor: end to end (Python featurization + model, as the filter stage calls it per
    Arrow batch) and model only (pre-featurized batches of ``b`` lines), lines/s, with the GPU
    utilisation of each loop; ``featurize`` is the featurization alone (CPU, one process)."""
    from models.clutter import load
    from models.common import predict_proba
    from pipeline.filter.clutter import split_lines
    from pipeline.filter.features import Features

    lines = [split_lines(d) for d in docs]
    n_lines = sum(map(len, lines))
    rows = []
    for b in batches:
        p = load(None, device, batch_lines=b)
        p.score_docs(lines[:64])  # warm-up: memo tables, CUDA context and kernels
        _sync(device)
        with GpuSampler() as gs_e2e:
            t, c = time.perf_counter(), time.process_time()
            p.score_docs(lines)
            _sync(device)
            e2e = n_lines / (time.perf_counter() - t)
            e2e_cpu = n_lines / max(1e-9, time.process_time() - c)
        t = time.process_time()
        per_doc = p.featurize(lines)
        featurize = n_lines / max(1e-9, time.process_time() - t)
        feats = Features.concat(per_doc)
        chunks = [feats.slice(i, i + b) for i in range(0, len(feats), b)]
        for ch in chunks[:2]:
            predict_proba(p.model, ch, p.device)  # warm-up
        _sync(device)
        model_only, gs = _model_only(p, chunks, len(feats), device, min_s)
        rows.append({"model": "clutter", "unit": "lines/s", "device": device, "batch": b, "end_to_end": e2e,
                     "end_to_end_per_cpu_s": e2e_cpu, "featurize_per_cpu_s": featurize, "model_only": model_only,
                     "gpu_util": gs.summary, "gpu_util_end_to_end": gs_e2e.summary, "version": p.version})
    return rows


def bench_quality(docs: list[str], device: str, batches: list[int], min_s: float) -> list[dict]:
    from models.common import predict_proba
    from models.quality import load

    rows = []
    for b in batches:
        p = load(None, device, batch_docs=b)
        t = time.perf_counter()
        p.predict(docs)
        _sync(device)
        e2e = len(docs) / (time.perf_counter() - t)
        chunks = [p.featurize(docs[i : i + b]) for i in range(0, len(docs), b)]
        predict_proba(p.model, chunks[0], p.device)
        model_only, gs = _model_only(p, chunks, len(docs), device, min_s)
        rows.append({"model": "quality", "unit": "docs/s", "device": device, "batch": b, "end_to_end": e2e,
                     "model_only": model_only, "gpu_util": gs.summary})
    return rows


def bench_category(docs: list[str], device: str, batches: list[int]) -> list[dict]:
    from models.common import category_module

    mod = category_module()
    if mod is None:
        print("models.category is not installed: category predictor skipped")
        return []
    p = mod.load(None, device)
    rows = []
    p.predict(docs[:8])
    for b in batches:
        with GpuSampler() as gs:
            t = time.perf_counter()
            for i in range(0, len(docs), b):
                p.predict(docs[i : i + b])
            _sync(device)
            e2e = len(docs) / (time.perf_counter() - t)
        rows.append({"model": "category", "unit": "docs/s", "device": device, "batch": b, "end_to_end": e2e,
                     "model_only": None, "gpu_util": gs.summary, "version": p.version})
    return rows


def parity(device: str) -> dict:
    """Max |CPU - device| score difference of the committed artifacts on the bench documents."""
    from models.clutter import load as load_c
    from models.quality import load as load_q
    from pipeline.filter.clutter import split_lines

    docs = synthetic_docs(300, seed=7)
    lines = [split_lines(d) for d in docs]
    c_cpu = np.concatenate(load_c(None, "cpu").score_docs(lines))
    c_dev = np.concatenate(load_c(None, device).score_docs(lines))
    q_cpu, q_dev = load_q(None, "cpu").predict(docs), load_q(None, device).predict(docs)
    out = {"clutter_max_abs_diff": float(np.abs(c_cpu - c_dev).max()),
           "quality_max_abs_diff": float(np.abs(q_cpu - q_dev).max())}
    from models.common import category_module

    mod = category_module()
    if mod is not None:
        ic, pc = mod.load(None, "cpu").predict(docs)
        idv, pdv = mod.load(None, device).predict(docs)
        out["category_label_agreement"] = float((np.asarray(ic) == np.asarray(idv)).mean())
        out["category_prob_max_abs_diff"] = float(np.abs(np.asarray(pc) - np.asarray(pdv)).max())
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, or both")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--clutter-batches", default="1024,8192,65536")
    ap.add_argument("--quality-batches", default="64,256,1024")
    ap.add_argument("--category-batches", default="64,256,1024")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="model-only loop duration per point")
    ap.add_argument("--parity", action="store_true", help="also compare CPU and device scores")
    ap.add_argument("--skip", default="", help="comma list of models to skip (clutter,quality,category)")
    ap.add_argument("--json", default=None, help="write rows to this JSON file")
    args = ap.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    docs = synthetic_docs(args.docs)
    skip = set(filter(None, args.skip.split(",")))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    rows: list[dict] = []
    for dev in devices:
        if "clutter" not in skip:
            rows += bench_clutter(docs, dev, [int(x) for x in args.clutter_batches.split(",")], args.min_seconds)
        if "quality" not in skip:
            rows += bench_quality(docs, dev, [int(x) for x in args.quality_batches.split(",")], args.min_seconds)
        if "category" not in skip:
            rows += bench_category(docs, dev, [int(x) for x in args.category_batches.split(",")])
    cpu_best: dict[str, dict] = {}
    for r in rows:
        if r["device"] == "cpu" and (r["model"] not in cpu_best or (r["model_only"] or 0) > (cpu_best[r["model"]]["model_only"] or 0)):
            cpu_best[r["model"]] = r
    print(f"{'model':<9}{'device':<7}{'batch':>7}{'end-to-end':>14}{'model-only':>14}  unit     gpu util / vs cpu")
    for r in rows:
        mo = f"{r['model_only']:>14,.0f}" if r["model_only"] else f"{'-':>14}"
        ratio = ""
        ref = cpu_best.get(r["model"])
        if r["device"] != "cpu" and ref and r["model_only"] and ref["model_only"]:
            ratio = f" model-only x{r['model_only'] / ref['model_only']:.1f} vs best cpu (batch {ref['batch']})"
        extra = ""
        if "featurize_per_cpu_s" in r:
            extra = (f" | end-to-end gpu util {r['gpu_util_end_to_end']}, featurize {r['featurize_per_cpu_s']:,.0f} "
                     f"{r['unit'].split('/')[0]} per CPU-s")
        print(f"{r['model']:<9}{r['device']:<7}{r['batch']:>7}{r['end_to_end']:>14,.0f}{mo}  {r['unit']:<8} "
              f"{r['gpu_util']}{ratio}{extra}")
    if args.parity and any(d != "cpu" for d in devices):
        rows.append({"parity": parity(next(d for d in devices if d != "cpu"))})
        print("parity:", rows[-1]["parity"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
