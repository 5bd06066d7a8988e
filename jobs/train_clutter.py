"""Retrain the line-level web-clutter model (plain Python + torch on CPU; no Spark, no GPU).

    python -m jobs.train_clutter --build-from-shared [../shared/data] --out models/clutter
    python -m jobs.train_clutter --data my_lines.jsonl --out out/models/clutter-mine

Labeled data (``--data``, JSON Lines or Parquet), one record per document:
``{"doc_id": str, "lines": [str, ...], "labels": [1 | 0 | null, ...], "lang": str (optional),
"split": "train" | "test" (optional), "gold_text": str (optional)}`` — ``labels[i]`` is 1 when
``lines[i]`` is informational content, 0 when it is clutter, null when unknown (the line is still
model context but gets no loss). Without ``split`` a hash of ``seed:doc_id`` holds out 20 %.
``--build-from-shared`` builds this file from the gold sets (see :mod:`pipeline.filter.goldlabels`)
and caches it under ``out/`` (it holds third-party text: never commit it).

The job trains on the train split (minus 10 % of its documents for validation), picks the threshold on
validation (the best token F1 against gold that keeps >= 99 % of trafilatura's token recall; line-level
F1 when there is no gold text), evaluates on the held-out split — line ROC-AUC, and token P/R/F1 of
trafilatura alone vs trafilatura + model per language — and writes ``model.safetensors``,
``config.json`` (version, threshold, metrics) and ``MODEL_CARD.md`` to ``--out``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from models.common import HashedBagMLP, predict_groups, save_model, seed_everything, train_binary
from pipeline.filter.clutter import N_LINE_FEATURES, clean_lines, featurize_doc
from pipeline.filter.labeled import read_records, write_jsonl
from pipeline.filter.text import prf, roc_auc, token_prf

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / "out" / "train_clutter" / "gold_lines.jsonl.gz"


def _build_one(args: tuple) -> dict | None:
    from pipeline.filter.goldlabels import build_page

    page, seed = args
    return build_page(page, seed)


def build_from_shared(root: Path, seed: int, workers: int, limit: int | None = None) -> tuple[list[dict], dict]:
    from pipeline.filter.goldlabels import iter_gold_pages

    pages = list(iter_gold_pages(root))
    if limit:
        pages = pages[:limit]
    if not pages:
        raise ValueError(f"no gold pages under {root}; pass the shared data folder (README: gold formats)")
    with Pool(workers) as pool:
        results = pool.map(_build_one, [(p, seed) for p in pages], chunksize=8)
    records = [r for r in results if r and "error" not in r]
    info = {
        "pages": len(pages),
        "empty_extraction": sum(r is None for r in results),
        "extract_errors": sum(1 for r in results if r and "error" in r),
    }
    return records, info


def _hash_split(doc_id: str, seed: int, percent: int) -> bool:
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest(), "big")
    return h % 100 < percent


def check_records(records: list[dict]) -> None:
    for i, r in enumerate(records):
        lines, labels = r.get("lines"), r.get("labels")
        if not isinstance(lines, list) or not isinstance(labels, list) or len(lines) != len(labels):
            raise ValueError(
                f"record {i} ({r.get('doc_id')}): needs 'lines' and 'labels' lists of equal length "
                "(labels 1 = content, 0 = clutter, null = unknown)"
            )


def to_groups(records: list[dict], n_buckets: int) -> list:
    out = []
    for r in records:
        labels = [-1.0 if x is None else float(x) for x in r["labels"]]
        out.append(featurize_doc([str(x) for x in r["lines"]], n_buckets, labels))
    return out


def evaluate(records: list[dict], scores: list[np.ndarray], threshold: float) -> dict:
    """Line AUC + token P/R/F1 (trafilatura vs +model) and snippet scores, per language."""
    labels = np.concatenate([np.array([-1 if x is None else x for x in r["labels"]], dtype=float) for r in records])
    flat = np.concatenate(scores) if scores else np.zeros(0)
    m = labels >= 0
    out: dict = {"documents": len(records), "lines": int(len(labels)), "labeled_lines": int(m.sum())}
    if m.any() and 0 < labels[m].sum() < m.sum():
        out["line_auc"] = roc_auc(labels[m], flat[m])
        pred = flat[m] >= threshold
        out["line_clutter_recall"] = float(((~pred) & (labels[m] == 0)).sum() / max(1, (labels[m] == 0).sum()))
        out["line_content_kept"] = float((pred & (labels[m] == 1)).sum() / max(1, (labels[m] == 1).sum()))
    by_lang: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for r, s in zip(records, scores):
        lang = r.get("lang") or "unknown"
        group = lang if lang in ("en", "zh") else "other"
        for g in (group, "all"):
            acc = by_lang[g]
            raw = "\n".join(r["lines"])
            cleaned, removed = clean_lines(r["lines"], s, threshold)
            acc["lines_removed"] += removed
            acc["lines"] += len(r["lines"])
            acc["labeled_clutter"] += sum(1 for y in r["labels"] if y == 0)
            acc["labeled_content"] += sum(1 for y in r["labels"] if y == 1)
            if r.get("gold_text"):
                acc["gold_docs"] += 1
                for name, text in (("base", raw), ("model", cleaned)):
                    tp, n_pred, n_gold = token_prf(text, r["gold_text"])
                    acc[f"{name}_tp"] += tp
                    acc[f"{name}_pred"] += n_pred
                    acc[f"{name}_gold"] += n_gold
            if r.get("with") or r.get("without"):
                from pipeline.filter.goldlabels import snippet_scores

                acc["snippet_docs"] += 1
                for name, text in (("base", raw), ("model", cleaned)):
                    wf, wt, wa, wot = snippet_scores(text, r.get("with") or [], r.get("without") or [])
                    acc[f"{name}_with_found"] += wf
                    acc[f"{name}_with_total"] += wt
                    acc[f"{name}_without_absent"] += wa
                    acc[f"{name}_without_total"] += wot
    langs = {}
    for g, acc in sorted(by_lang.items()):
        d: dict = {"lines": acc["lines"], "lines_removed": acc["lines_removed"],
                   "labeled_clutter": acc["labeled_clutter"], "labeled_content": acc["labeled_content"]}
        if acc["gold_docs"]:
            d["gold_docs"] = acc["gold_docs"]
            for name in ("base", "model"):
                d[f"{name}_token"] = prf(acc[f"{name}_tp"], acc[f"{name}_pred"], acc[f"{name}_gold"])
        if acc["snippet_docs"]:
            d["snippet_docs"] = acc["snippet_docs"]
            for name in ("base", "model"):
                d[f"{name}_snippets"] = {
                    "with_recall": acc[f"{name}_with_found"] / max(1, acc[f"{name}_with_total"]),
                    "without_precision": acc[f"{name}_without_absent"] / max(1, acc[f"{name}_without_total"]),
                    "with_total": acc[f"{name}_with_total"],
                    "without_total": acc[f"{name}_without_total"],
                }
        langs[g] = d
    out["by_lang"] = langs
    return out


def pick_threshold(records: list[dict], scores: list[np.ndarray], max_recall_loss: float) -> tuple[float, dict]:
    """Best token F1 on gold pages keeping >= (1 - max_recall_loss) of trafilatura's recall."""
    gold = [(r, s) for r, s in zip(records, scores) if r.get("gold_text")]
    grid = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]
    if gold:
        base = np.array([token_prf("\n".join(r["lines"]), r["gold_text"]) for r, _ in gold]).sum(0)
        base_recall = base[0] / max(1, base[2])
        best = (0.0, {"f1": -1.0})
        for t in grid:
            tot = np.array([token_prf(clean_lines(r["lines"], s, t)[0], r["gold_text"]) for r, s in gold]).sum(0)
            m = prf(*tot)
            if m["recall"] >= base_recall * (1 - max_recall_loss) and m["f1"] > best[1]["f1"]:
                best = (t, m)
        return best
    labels = np.concatenate([np.array([-1 if x is None else x for x in r["labels"]], dtype=float) for r in records])
    flat = np.concatenate(scores)
    mask = labels >= 0
    best = (0.5, {"f1": -1.0})
    for t in grid:
        pred = flat[mask] >= t
        tp = int((pred & (labels[mask] == 1)).sum())
        m = prf(tp, int(pred.sum()), int((labels[mask] == 1).sum()))
        if m["f1"] > best[1]["f1"]:
            best = (t, m)
    return best


def _fmt(m: dict) -> str:
    return f"P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}"


def model_card(cfg_extra: dict, data_desc: str) -> str:
    ev = cfg_extra["metrics"]["test"]
    rows = []
    for lang, d in ev["by_lang"].items():
        if "base_token" in d:
            rows.append(
                f"| {lang} | {d['gold_docs']} | {_fmt(d['base_token'])} | {_fmt(d['model_token'])} | "
                f"{d['lines_removed']}/{d['lines']} | {d['labeled_clutter']}/{d['labeled_content']} |"
            )
    snip = []
    for lang, d in ev["by_lang"].items():
        if "base_snippets" in d:
            b, m = d["base_snippets"], d["model_snippets"]
            snip.append(
                f"| {lang} | {d['snippet_docs']} | {b['with_recall']:.3f} / {b['without_precision']:.3f} | "
                f"{m['with_recall']:.3f} / {m['without_precision']:.3f} | {b['with_total']} / {b['without_total']} |"
            )
    return f"""# Web-clutter line model (`{{version}}`)

Scores each non-blank line of trafilatura's output 0-1 (1 = informational content); the `filter`
stage removes lines below `filter.clutter.threshold` (recommended here: **{cfg_extra['threshold']}**).

- **Architecture**: hashed word/CJK-character unigrams + bigrams + line start/end markers
  (`EmbeddingBag`, {cfg_extra['n_buckets_doc']} buckets x {cfg_extra['emb_dim_doc']} dims), the bags of the previous
  and next line, and {N_LINE_FEATURES} dense line/context features -> MLP -> sigmoid. CPU-friendly; GPU-batched in Spark.
- **Training data**: {data_desc}
- **Labels**: a line of trafilatura's output (`favor_precision=True, include_comments=False,
  include_tables=True, deduplicate=False`, HTML decoded with its charset) is content when >= 60 % of its
  token trigrams occur in the page's gold main text (short lines: equal to a whole gold block), clutter
  when < 20 % (short lines: absent from gold), unlabeled otherwise; trafilatura-eval pages use their
  `with`/`without` snippets. See `pipeline/filter/goldlabels.py`.
- **Split**: held-out = hash(seed, page) 20 % of pages + every Chinese page (too few to train on);
  threshold chosen on a validation tenth of the training pages.
- **Trained**: {cfg_extra['trained_at']} with `python -m jobs.train_clutter {cfg_extra['command']}`
  (seed {cfg_extra['seed']}, {cfg_extra['epochs']} epochs, {cfg_extra['train_seconds']:.0f} s on CPU).

## Held-out results (threshold {cfg_extra['threshold']})

Line ROC-AUC on labeled held-out lines: **{ev.get('line_auc', float('nan')):.3f}**
({ev['labeled_lines']} labeled lines, {ev['documents']} pages).

Token precision / recall / F1 (bag of words; CJK characters as tokens) against the gold main text:

| lang | pages | trafilatura alone | trafilatura + clutter model | lines removed | labeled clutter/content lines |
|---|---|---|---|---|---|
{chr(10).join(rows)}

trafilatura-eval snippet scores (share of `with` snippets found / share of `without` snippets absent):

| lang | pages | trafilatura alone | + clutter model | snippets with / without |
|---|---|---|---|---|
{chr(10).join(snip)}

Chinese gold is scarce: the Chinese pages here are Readability.js test pages (machine gold, not human)
and trafilatura-eval snippet pages; treat the `zh` rows as indicative only (when they hold no labeled
clutter line, precision cannot rise there and the row only shows what the model costs in recall).
`other` pools the remaining languages; its token rows are few pages, some with gold far longer than
the extracted article (Dragnet), so its snippet rows say more.
"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="jobs.train_clutter", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="labeled lines file (JSONL[.gz] or Parquet), format in the module doc")
    src.add_argument("--build-from-shared", nargs="?", const=str(REPO.parent / "shared" / "data"),
                     metavar="DIR", help="build labels from the gold sets under DIR")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="where --build-from-shared caches its labeled file")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cache even if it exists")
    p.add_argument("--build-only", action="store_true", help="stop after writing the labeled cache")
    p.add_argument("--out", help="model directory to write (required unless --build-only)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (these small models train fastest single-threaded)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-lines", type=int, default=1024)
    p.add_argument("--n-buckets", type=int, default=1 << 17)
    p.add_argument("--emb-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--test-percent", type=int, default=20)
    p.add_argument("--max-recall-loss", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=2, help="processes for --build-from-shared")
    p.add_argument("--limit", type=int, default=None, help="use only the first N gold pages (smoke tests)")
    args = p.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)

    build_info: dict = {}
    if args.build_from_shared:
        cache = Path(args.cache)
        if cache.exists() and not args.rebuild and not args.limit:
            records = read_records(cache)
            print(f"[train_clutter] read {len(records)} labeled pages from cache {cache}")
        else:
            records, build_info = build_from_shared(Path(args.build_from_shared), args.seed, args.workers, args.limit)
            if not args.limit:
                write_jsonl(cache, records)
            print(f"[train_clutter] built {len(records)} labeled pages {build_info}", flush=True)
            if args.build_only:
                return {"cache": str(cache), **build_info}
        data_desc = (
            "gold sets in ../shared/data: CleanEval dev+final, CleanPortalEval, Dragnet, L3S-GN1, "
            "Readability test pages, trafilatura-eval (snippets); "
            + ", ".join(f"{k}: {v}" for k, v in sorted(_count_sources(records).items()))
        )
    else:
        records = read_records(args.data)
        data_desc = f"`{args.data}` ({len(records)} documents)"
    if not args.out:
        p.error("--out is required")
    check_records(records)
    for r in records:
        if r.get("split") not in ("train", "test"):
            r["split"] = "test" if _hash_split(str(r.get("doc_id")), args.seed, args.test_percent) else "train"
    train_all = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    val = [r for r in train_all if _hash_split("val:" + str(r.get("doc_id")), args.seed, 10)]
    train = [r for r in train_all if r not in val] if len(train_all) > 10 else train_all
    if not val:
        val = train
    if not train or not test:
        raise ValueError(f"need training and held-out documents; got {len(train)} train, {len(test)} test")
    print(f"[train_clutter] pages: train {len(train)}, validation {len(val)}, test {len(test)}")

    groups = to_groups(train, args.n_buckets)
    labels = np.concatenate([g.labels for g in groups])
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"training labels need both classes; got {n_pos} content and {n_neg} clutter lines")
    print(f"[train_clutter] training lines: {n_pos} content, {n_neg} clutter, {int((labels < 0).sum())} unlabeled")
    seed_everything(args.seed)  # the embedding init draws from torch's RNG
    model = HashedBagMLP(args.n_buckets, args.emb_dim, N_LINE_FEATURES, args.hidden, context=True, dropout=args.dropout)
    t1 = time.time()
    train_binary(model, groups, args.epochs, args.lr, args.batch_lines, args.seed)
    train_seconds = time.time() - t1

    val_scores = predict_groups(model, to_groups(val, args.n_buckets))
    threshold, val_metrics = pick_threshold(val, val_scores, args.max_recall_loss)
    test_scores = predict_groups(model, to_groups(test, args.n_buckets))
    test_metrics = evaluate(test, test_scores, threshold)
    extra = {
        "task": "clutter",
        "threshold": threshold,
        "seed": args.seed,
        "epochs": args.epochs,
        "trained_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "train_seconds": train_seconds,
        "command": " ".join(sys.argv[1:] if argv is None else argv),
        "n_buckets_doc": args.n_buckets,
        "emb_dim_doc": args.emb_dim,
        "data": {"train_pages": len(train), "val_pages": len(val), "test_pages": len(test),
                 "train_content_lines": n_pos, "train_clutter_lines": n_neg, **build_info},
        "metrics": {"validation_at_threshold": val_metrics, "test": test_metrics},
    }
    cfg = save_model(args.out, "clutter", model, extra, model_card(extra, data_desc))
    print(json.dumps({"version": cfg["version"], "threshold": threshold, "test": test_metrics}, indent=2))
    print(f"[train_clutter] wrote {args.out} in {time.time() - t0:.0f} s")
    return cfg


def _count_sources(records: list[dict]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in records:
        out[str(r.get("source"))] += 1
    return out


if __name__ == "__main__":
    main()
