"""Retrain the line-level web-clutter model (plain Python + torch on CPU; no Spark, no GPU).

    python -m jobs.train_clutter --build-from-shared [../shared/data] --out models/clutter
    python -m jobs.train_clutter --data my_lines.jsonl --out out/models/clutter-mine

Labeled data (``--data``, JSON Lines or Parquet), one record per document:
``{"doc_id": str, "lines": [str, ...], "labels": [1 | 0 | null, ...], "lang": str (optional),
"split": "train" | "test" (optional), "gold_text": str (optional)}`` — ``labels[i]`` is 1 when
``lines[i]`` is informational content, 0 when it is clutter, null when unknown (the line is still
model context but gets no loss). Without ``split`` a hash of ``seed:doc_id`` holds out 20 %.
``--build-from-shared`` builds this file from the gold sets (see :mod:`pipeline.filter.goldlabels`)
plus the hand-labeled Chinese pages (``--zh-labels``, ``data/clutter_zh_labels.jsonl``) and caches it
under ``out/`` (it holds third-party text: never commit it).

The job trains on the train split minus a validation fifth of its documents, picks the threshold on
validation — the highest token precision against gold whose token recall is at most
``--max-recall-loss`` below trafilatura alone (0.0005 = 0.05 points; line-level F1 when there is no
gold text) — evaluates on the held-out split (line ROC-AUC, token P/R/F1 of trafilatura alone vs
trafilatura + model per language) and writes ``model.safetensors``, ``config.json`` (version,
threshold, metrics) and ``MODEL_CARD.md`` to ``--out``.
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

from models.clutter.net import ARCH, ClutterContextNet
from models.common import HashedBagMLP, predict_groups, save_model, seed_everything, train_binary
from pipeline.filter.clutter import N_LINE_FEATURES, clean_lines, featurize_doc
from pipeline.filter.labeled import read_records, write_jsonl
from pipeline.filter.text import eval_tokens, prf, roc_auc, token_prf, token_prf_aligned

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / "out" / "train_clutter"
ZH_LABELS = REPO / "data" / "clutter_zh_labels.jsonl"
# Threshold grid: fine near 0, where the first (most clutter-like) lines go.
THRESHOLDS = [round(x, 3) for x in (*np.arange(0.01, 0.1, 0.01), *np.arange(0.1, 0.96, 0.025))]


def _build_one(args: tuple) -> dict | None:
    from pipeline.filter.goldlabels import build_page

    page, seed = args
    return build_page(page, seed)


def default_cache(zh_labels: Path | None) -> Path:
    """The cache file of ``--build-from-shared``; named by the hand-label file's hash so that new labels
    rebuild it."""
    tag = hashlib.sha1(zh_labels.read_bytes()).hexdigest()[:8] if zh_labels else "nozh"
    return CACHE_DIR / f"gold_lines-{tag}.jsonl.gz"


def build_from_shared(root: Path, seed: int, workers: int, limit: int | None = None,
                      zh_labels: Path | None = None) -> tuple[list[dict], dict]:
    from pipeline.filter.goldlabels import iter_gold_pages

    pages = list(iter_gold_pages(root, zh_labels))
    if limit:
        pages = pages[:limit]
    if not pages:
        raise ValueError(f"no gold pages under {root}; pass the shared data folder (../shared/data/README.md lists the gold formats)")
    with Pool(workers) as pool:
        results = pool.map(_build_one, [(p, seed) for p in pages], chunksize=8)
    records = [r for r in results if r and "error" not in r]
    info = {
        "pages": len(pages),
        "empty_extraction": sum(r is None for r in results),
        "extract_errors": sum(1 for r in results if r and "error" in r),
        "hand_labeled_pages": sum(1 for r in records if "unlabeled_lines" in r),
        # Lines of hand-labeled pages whose hash is not in the label file (the extractor changed) and
        # missed content lines not found again: both 0 when the labels match this trafilatura.
        "hand_unlabeled_lines": sum(r.get("unlabeled_lines", 0) for r in records),
        "hand_missed_not_found": sum(r.get("missed_not_found", 0) for r in records),
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


def _groups(r: dict) -> list[str]:
    """Report rows a record counts in: ``all``, its language (en / zh / other) and, for Chinese, its
    source (hand-labeled news pages vs Readability test pages)."""
    lang = r.get("lang") or "unknown"
    group = lang if lang in ("en", "zh") else "other"
    out = ["all", group]
    if group == "zh" and r.get("source"):
        out.append(f"zh:{r['source']}")
    return out


def labeled_prf(lines: list[str], labels: list, keep: list[bool], gold_text: str) -> tuple[int, int, int]:
    """``(tp, n_pred, n_gold)`` from line labels, for pages labeled line by line (the Chinese hand
    labels): every token of a kept content line is a true positive, every token of a kept clutter line a
    false positive; gold = the tokens of all content lines, the missed ones included (``gold_text``)."""
    tp = n_pred = 0
    for ln, y, k in zip(lines, labels, keep):
        if k:
            n = len(eval_tokens(ln))
            n_pred += n
            tp += n if y == 1 else 0
    return tp, n_pred, len(eval_tokens(gold_text))


def evaluate(records: list[dict], scores: list[np.ndarray], threshold: float | dict[str, float]) -> dict:
    """Line AUC + token P/R/F1 (trafilatura vs +model vs removing exactly the labeled clutter) and
    snippet scores, per language. ``threshold`` may be a ``{lang: t, "": default}`` map."""
    labels = np.concatenate([np.array([-1 if x is None else x for x in r["labels"]], dtype=float) for r in records])
    flat = np.concatenate(scores) if scores else np.zeros(0)
    thr = threshold if isinstance(threshold, dict) else {"": threshold}
    m = labels >= 0
    out: dict = {"documents": len(records), "lines": int(len(labels)), "labeled_lines": int(m.sum())}
    if m.any() and 0 < labels[m].sum() < m.sum():
        out["line_auc"] = roc_auc(labels[m], flat[m])
        line_thr = np.concatenate([np.full(len(r["lines"]), thr.get(r.get("lang") or "", thr[""])) for r in records])
        pred = flat[m] >= line_thr[m]
        out["line_clutter_recall"] = float(((~pred) & (labels[m] == 0)).sum() / max(1, (labels[m] == 0).sum()))
        out["line_content_kept"] = float((pred & (labels[m] == 1)).sum() / max(1, (labels[m] == 1).sum()))
    by_lang: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for r, s in zip(records, scores):
        t = thr.get(r.get("lang") or "", thr[""])
        raw = "\n".join(r["lines"])
        cleaned, removed = clean_lines(r["lines"], s, t)
        oracle = "\n".join(ln for ln, y in zip(r["lines"], r["labels"]) if y != 0)
        keeps = {"base": [True] * len(s), "model": [x >= t for x in s], "oracle": [y != 0 for y in r["labels"]]}
        for g in _groups(r):
            acc = by_lang[g]
            acc["lines_removed"] += removed
            acc["lines"] += len(r["lines"])
            acc["labeled_clutter"] += sum(1 for y in r["labels"] if y == 0)
            acc["labeled_content"] += sum(1 for y in r["labels"] if y == 1)
            acc["clutter_removed"] += sum(1 for y, x in zip(r["labels"], s) if y == 0 and x < t)
            acc["content_removed"] += sum(1 for y, x in zip(r["labels"], s) if y == 1 and x < t)
            if r.get("gold_text"):
                acc["gold_docs"] += 1
                for name, text in (("base", raw), ("model", cleaned), ("oracle", oracle)):
                    for metric, fn in (("token", token_prf), ("aligned", token_prf_aligned)):
                        tp, n_pred, n_gold = fn(text, r["gold_text"])
                        acc[f"{name}_{metric}_tp"] += tp
                        acc[f"{name}_{metric}_pred"] += n_pred
                        acc[f"{name}_{metric}_gold"] += n_gold
                    if r.get("hand_labeled"):
                        tp, n_pred, n_gold = labeled_prf(r["lines"], r["labels"], keeps[name], r["gold_text"])
                        acc[f"{name}_labeled_tp"] += tp
                        acc[f"{name}_labeled_pred"] += n_pred
                        acc[f"{name}_labeled_gold"] += n_gold
                        acc["hand_docs"] += 1 if name == "base" else 0
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
        d: dict = {k: acc[k] for k in ("lines", "lines_removed", "labeled_clutter", "labeled_content",
                                       "clutter_removed", "content_removed")}
        if acc["hand_docs"]:
            d["hand_docs"] = acc["hand_docs"]
        if acc["gold_docs"]:
            d["gold_docs"] = acc["gold_docs"]
            for name in ("base", "model", "oracle"):
                for metric in ("token", "aligned", "labeled"):
                    key = f"{name}_{metric}"
                    if metric != "labeled" or acc["hand_docs"]:
                        d[key] = prf(acc[f"{key}_tp"], acc[f"{key}_pred"], acc[f"{key}_gold"])
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


def pick_threshold(records: list[dict], scores: list[np.ndarray], max_recall_loss: float,
                   metric: str = "aligned") -> tuple[float, dict]:
    """The threshold of highest token precision on gold pages whose token recall is at most
    ``max_recall_loss`` (absolute, 0.0005 = 0.05 points) below trafilatura alone; ties go to the lower
    threshold (fewer lines removed). ``metric``: ``aligned`` (in-order token matches,
    :func:`token_prf_aligned`) or ``token`` (bag of tokens). Without gold text: the best line-level F1
    of keeping content."""
    fn = token_prf_aligned if metric == "aligned" else token_prf
    gold = [(r, s) for r, s in zip(records, scores) if r.get("gold_text")]
    if gold:
        memo: dict[tuple[int, int], tuple[int, int, int]] = {}

        def counts(i: int, r: dict, s: np.ndarray, t: float) -> tuple[int, int, int]:
            text, removed = clean_lines(r["lines"], s, t)
            key = (i, removed)  # lines below t: nested sets, so the count names the set
            if key not in memo:
                memo[key] = fn(text, r["gold_text"])
            return memo[key]

        base = np.array([counts(i, r, s, -1.0) for i, (r, s) in enumerate(gold)]).sum(0)
        base_m = prf(*base)
        best = (0.0, {**base_m, "recall_loss": 0.0, "base": base_m, "metric": metric})
        for t in THRESHOLDS:
            m = prf(*np.array([counts(i, r, s, t) for i, (r, s) in enumerate(gold)]).sum(0))
            loss = base_m["recall"] - m["recall"]
            if loss <= max_recall_loss + 1e-12 and m["precision"] > best[1]["precision"]:
                best = (t, {**m, "recall_loss": loss, "base": base_m, "metric": metric})
        return best
    labels = np.concatenate([np.array([-1 if x is None else x for x in r["labels"]], dtype=float) for r in records])
    flat = np.concatenate(scores)
    mask = labels >= 0
    best = (0.5, {"f1": -1.0})
    for t in THRESHOLDS:
        pred = flat[mask] >= t
        tp = int((pred & (labels[mask] == 1)).sum())
        m = prf(tp, int(pred.sum()), int((labels[mask] == 1).sum()))
        if m["f1"] > best[1]["f1"]:
            best = (t, m)
    return best


def _fmt(m: dict) -> str:
    return f"P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}"


def _delta(base: dict, model: dict) -> str:
    return f"{100 * (model['precision'] - base['precision']):+.2f} / {100 * (model['recall'] - base['recall']):+.2f}"


GROUP_NAMES = {"all": "all", "en": "en", "other": "other", "zh": "zh (all)",
               "zh:gne-chinese-news-pages": "zh, hand-labeled news pages", "zh:readability": "zh, Readability pages",
               "zh:trafilatura-eval": "zh, trafilatura-eval snippet pages"}


def hand_label_stats(path: Path | None) -> dict:
    """Counts of the Chinese hand-label file, for the model card."""
    from pipeline.filter.goldlabels import read_hand_labels

    h: dict = defaultdict(int)
    for rec in read_hand_labels(path) if path and path.exists() else []:
        h["pages"] += 1
        h[f"{rec['split']}_pages"] += 1
        h["lines"] += len(rec["lines"])
        h["content"] += sum(1 for d in rec["lines"] if d["label"] == 1)
        h["clutter"] += sum(1 for d in rec["lines"] if d["label"] == 0)
        h[f"{rec['split']}_clutter"] += sum(1 for d in rec["lines"] if d["label"] == 0)
        h["missed"] += len(rec["missed"])
        h["missed_pages"] += 1 if rec["missed"] else 0
    return h


def model_card(cfg_extra: dict, data_desc: str, h: dict | None = None) -> str:
    h = defaultdict(int, h or {})
    ev = cfg_extra["metrics"]["test"]
    val = cfg_extra["metrics"]["validation_at_threshold"]
    rows = []
    for metric, title in (("token", "bag of tokens"), ("aligned", "aligned tokens"), ("labeled", "line labels")):
        for g, d in ev["by_lang"].items():
            if f"base_{metric}" in d:
                rows.append(
                    f"| {GROUP_NAMES.get(g, g)} | {title} | {d['hand_docs' if metric == 'labeled' else 'gold_docs']} | "
                    f"{_fmt(d[f'base_{metric}'])} | "
                    f"{_fmt(d[f'model_{metric}'])} | {_delta(d[f'base_{metric}'], d[f'model_{metric}'])} | "
                    f"{_fmt(d[f'oracle_{metric}'])} |"
                )
    lines = [f"| {GROUP_NAMES.get(g, g)} | {d['lines_removed']} / {d['lines']} | {d['clutter_removed']} / "
             f"{d['labeled_clutter']} | {d['content_removed']} / {d['labeled_content']} |"
             for g, d in ev["by_lang"].items()]
    snip = []
    for g, d in ev["by_lang"].items():
        if "base_snippets" in d:
            b, m = d["base_snippets"], d["model_snippets"]
            snip.append(
                f"| {GROUP_NAMES.get(g, g)} | {d['snippet_docs']} | {b['with_recall']:.3f} / {b['without_precision']:.3f} | "
                f"{m['with_recall']:.3f} / {m['without_precision']:.3f} | {b['with_total']} / {b['without_total']} |"
            )
    arch = (
        f"`{cfg_extra['arch']}` (`models/clutter/net.py`): hashed word/CJK-character unigrams + bigrams + line "
        f"start/end markers (`EmbeddingBag`, {cfg_extra['n_buckets_doc']} buckets x {cfg_extra['emb_dim_doc']} dims) "
        f"and {N_LINE_FEATURES} dense features of the line and its document (position, character offset, distance "
        "to the main-text span, length in word units, character classes, sentence and clause punctuation, "
        "separators, URL/©/date patterns, an English + Chinese furniture lexicon, credit lines, duplicates in "
        "the page, lengths of the lines one and two away, the run of short lines it sits in) -> hidden layer, "
        f"then {cfg_extra['context_layers']} residual layers that mix each line with its previous and next "
        "line (so each line sees its neighbours' learned representations), -> logit"
        if cfg_extra["arch"] == ARCH else
        f"`HashedBagMLP`: hashed n-gram bag + the bags of the previous and next line + {N_LINE_FEATURES} dense "
        "features -> MLP"
    )
    return f"""# Web-clutter line model (`{{version}}`)

Scores each non-blank line of trafilatura's output 0-1 (1 = informational content); the `filter`
stage removes lines below `filter.clutter.threshold` (chosen here: **{cfg_extra['threshold']}**).

- **Architecture**: {arch}. Float64 inference; a line's score depends on its own document only.
- **Training data**: {data_desc}
- **Labels (gold sets)**: a line of the stage-1 extraction (`pipeline/prepare/extract.py` with the `prepare`
  defaults: trafilatura `favor_precision`, tables, no comments, `fast=false`) is content when >= 60 % of its
  token trigrams occur in the page's gold main text (short lines: equal to a whole gold block), clutter
  when < 20 % (short lines: absent from gold), unlabeled otherwise; trafilatura-eval pages use their
  `with`/`without` snippets. See `pipeline/filter/goldlabels.py`.
- **Labels (Chinese, `data/clutter_zh_labels.jsonl`)**: the team read every line of the stage-1 extraction
  of the {h['pages']} `gne-chinese-news-pages` and labeled it ({h['lines']} distinct lines: {h['content']} content,
  {h['clutter']} clutter); lines are named by the SHA-1 of the whitespace-collapsed line, no text is stored. Content: headline, body paragraphs and fragments,
  subheadings, descriptive captions, in-article lists, tables and code. Clutter: navigation and channel
  lists, breadcrumbs, related / recommended / hot lists, share / follow / QR-code / app prompts, comment
  widgets and user comments, ads and advertorials, copyright / ICP / contact footers, and credit lines
  (source, editor, reporter byline, original title `原标题`, photo credit). Recall: content lines the
  precision extraction missed were labeled too, by reading the extra lines of trafilatura's `favor_recall`
  mode ({h['missed']} lines on {h['missed_pages']} pages; stored as hashes with their token counts), so the gold text of a page is its
  content lines plus these missed lines: recall counts what trafilatura's precision mode lost, not only
  what the model removes. Split by site (all pages of a site on one side): sites sorted by clutter lines,
  each given to the side with fewer clutter lines so far -> {h['train_pages']} pages train / {h['test_pages']} test
  ({h['train_clutter']} / {h['test_clutter']} clutter lines).
- **Split**: held-out = hash(seed, page) 20 % of the gold pages, the Readability Chinese pages and the
  test side of the Chinese hand labels; validation = a hash fifth of the training pages.
- **Threshold rule**: the threshold (grid 0.01-0.95) of highest token precision on the validation pages
  whose token recall is at most {cfg_extra['max_recall_loss']} ({100 * cfg_extra['max_recall_loss']:.2f} points) below
  trafilatura alone, tokens matched {val.get('metric', 'aligned')} (validation: {_fmt(val)},
  trafilatura alone {_fmt(val['base']) if 'base' in val else '-'}).
- **Trained**: {cfg_extra['trained_at']} with `python -m jobs.train_clutter {cfg_extra['command']}`
  (seed {cfg_extra['seed']}, {cfg_extra['epochs']} epochs, {cfg_extra['train_seconds']:.0f} s on one CPU core).

## Held-out results (threshold {cfg_extra['threshold']})

Line ROC-AUC on labeled held-out lines: **{ev.get('line_auc', float('nan')):.3f}**
({ev['labeled_lines']} labeled lines, {ev['documents']} pages).

Token precision / recall / F1 against the gold main text (tokens: words, each CJK character one token).
Three ways of matching: *bag of tokens* (multiset overlap, the usual article-extraction score),
*aligned tokens* (longest common subsequence: tokens match only in order, as CleanEval's alignment-based
scoring), *line labels* (hand-labeled pages only: a kept content line's tokens are true positives, a kept
clutter line's false positives; exact). "Oracle" removes exactly the lines labeled clutter.

| pages | matching | gold pages | trafilatura alone | + clutter model | ΔP / ΔR (points) | oracle |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Lines removed, labeled clutter lines removed, labeled content lines removed:

| pages | removed / lines | clutter removed / labeled clutter | content removed / labeled content |
|---|---|---|---|
{chr(10).join(lines)}

trafilatura-eval snippet scores (share of `with` snippets found / share of `without` snippets absent):

| pages | pages | trafilatura alone | + clutter model | snippets with / without |
|---|---|---|---|---|
{chr(10).join(snip)}

Reading the figures: removing lines can only lower token recall, and the bag-of-tokens score charges
even the removal of true clutter — its words (in Chinese, its characters) also occur in gold text the
extractor missed elsewhere on the page; the oracle row shows that cost. Aligned matching removes most of
that artefact; the hand-labeled Chinese rows are exact. Most English "content" lines the model removes
are lines the gold annotators kept that are page furniture under the dots.llm1 definition (comment
bylines "Posted by: ... | date", related-article teasers, copyright notices, "Return to home page").
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobs.train_clutter", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="labeled lines file (JSONL[.gz] or Parquet), format in the module doc")
    src.add_argument("--build-from-shared", nargs="?", const=str(REPO.parent / "shared" / "data"),
                     metavar="DIR", help="build labels from the gold sets under DIR")
    p.add_argument("--zh-labels", default=str(ZH_LABELS),
                   help="hand labels of the Chinese news pages (used with --build-from-shared; 'none' skips them)")
    p.add_argument("--cache", default=None,
                   help="where --build-from-shared caches its labeled file (default: out/train_clutter/, "
                        "named by the hand-label file's hash)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cache even if it exists")
    p.add_argument("--build-only", action="store_true", help="stop after writing the labeled cache")
    p.add_argument("--out", help="model directory to write (required unless --build-only)")
    p.add_argument("--cache-dir", default=None, help="local cache of s3:// and https:// inputs (docs/OBJECT_STORAGE.md)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (these small models train fastest single-threaded)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-lines", type=int, default=1024)
    p.add_argument("--n-buckets", type=int, default=1 << 17)
    p.add_argument("--emb-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--arch", choices=("context", "bag"), default="context",
                   help="context: ClutterContextNet (neighbour-mixing layers); bag: HashedBagMLP (neighbour bags)")
    p.add_argument("--context-layers", type=int, default=2, help="neighbour-mixing layers (receptive field +-N lines)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--test-percent", type=int, default=20)
    p.add_argument("--val-percent", type=int, default=20, help="share of the training pages that pick the threshold")
    p.add_argument("--max-recall-loss", type=float, default=0.0005,
                   help="threshold rule: most token recall (absolute) the model may cost on validation")
    p.add_argument("--threshold-metric", choices=("aligned", "token"), default="aligned",
                   help="token matching of the threshold rule: in order (aligned) or bag of tokens")
    p.add_argument("--workers", type=int, default=2, help="processes for --build-from-shared")
    p.add_argument("--limit", type=int, default=None, help="use only the first N gold pages (smoke tests)")
    return p.parse_args(argv)


def load_records(args: argparse.Namespace) -> tuple[list[dict], dict, str]:
    """The labeled documents (built from the shared gold sets or read from ``--data``), build counts,
    and a one-line description for the model card."""
    if not args.build_from_shared:
        records = read_records(args.data)
        return records, {}, f"`{args.data}` ({len(records)} documents)"
    zh = None if args.zh_labels in (None, "", "none") else Path(args.zh_labels)
    cache = Path(args.cache) if args.cache else default_cache(zh)
    build_info: dict = {}
    if cache.exists() and not args.rebuild and not args.limit:
        records = read_records(cache)
        print(f"[train_clutter] read {len(records)} labeled pages from cache {cache}")
    else:
        records, build_info = build_from_shared(Path(args.build_from_shared), args.seed, args.workers, args.limit, zh)
        if not args.limit:
            write_jsonl(cache, records)
        print(f"[train_clutter] built {len(records)} labeled pages {build_info} -> {cache}", flush=True)
    desc = (
        "gold sets in ../shared/data: CleanEval dev+final, CleanPortalEval, Dragnet, L3S-GN1, "
        "Readability test pages, trafilatura-eval (snippets), and the team's hand labels of the "
        "gne-chinese-news-pages (`data/clutter_zh_labels.jsonl`); pages per source: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(_count_sources(records).items()))
    )
    return records, build_info, desc


def split_records(records: list[dict], seed: int, test_percent: int,
                  val_percent: int = 20) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test): ``split`` of each record (or a hash of its id), validation = a hash
    ``val_percent`` % of the training documents."""
    for r in records:
        if r.get("split") not in ("train", "test"):
            r["split"] = "test" if _hash_split(str(r.get("doc_id")), seed, test_percent) else "train"
    train_all = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    is_val = [_hash_split("val:" + str(r.get("doc_id")), seed, val_percent) for r in train_all]
    val = [r for r, v in zip(train_all, is_val) if v]
    train = [r for r, v in zip(train_all, is_val) if not v] if len(train_all) > 10 else train_all
    if not val:
        val = train
    if not train or not test:
        raise ValueError(f"need training and held-out documents; got {len(train)} train, {len(test)} test")
    return train, val, test


def fit(train: list[dict], args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """Train the ``--arch`` module on labeled documents; returns it and line counts."""
    groups = to_groups(train, args.n_buckets)
    labels = np.concatenate([g.labels for g in groups])
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"training labels need both classes; got {n_pos} content and {n_neg} clutter lines")
    print(f"[train_clutter] training lines: {n_pos} content, {n_neg} clutter, {int((labels < 0).sum())} unlabeled")
    seed_everything(args.seed)  # the embedding init draws from torch's RNG
    if args.arch == "bag":
        model = HashedBagMLP(args.n_buckets, args.emb_dim, N_LINE_FEATURES, args.hidden, context=True,
                             dropout=args.dropout)
    else:
        model = ClutterContextNet(args.n_buckets, args.emb_dim, N_LINE_FEATURES, args.hidden, args.context_layers,
                                  args.dropout)
    train_binary(model, groups, args.epochs, args.lr, args.batch_lines, args.seed)
    return model, {"train_content_lines": n_pos, "train_clutter_lines": n_neg}


def main(argv: list[str] | None = None) -> dict:
    """Run the job; s3:// and https:// inputs are staged into a local cache and an s3:// output is
    written locally, then published (pipeline.storage.staging; ``--cache-dir DIR``)."""
    from pipeline.storage.staging import remote_io

    return remote_io(argv, _main, inputs=("--data",), outputs=("--out",))


def _main(argv: list[str]) -> dict:
    args = parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)
    records, build_info, data_desc = load_records(args)
    if args.build_only:
        return build_info
    if not args.out:
        raise SystemExit("jobs.train_clutter: --out is required")
    check_records(records)
    train, val, test = split_records(records, args.seed, args.test_percent, args.val_percent)
    print(f"[train_clutter] pages: train {len(train)}, validation {len(val)}, test {len(test)}")
    t1 = time.time()
    model, counts = fit(train, args)
    train_seconds = time.time() - t1

    val_scores = predict_groups(model, to_groups(val, args.n_buckets))
    threshold, val_metrics = pick_threshold(val, val_scores, args.max_recall_loss, args.threshold_metric)
    test_scores = predict_groups(model, to_groups(test, args.n_buckets))
    test_metrics = evaluate(test, test_scores, threshold)
    extra = {
        "task": "clutter",
        "arch": ARCH if args.arch == "context" else "HashedBagMLP",
        "context_layers": args.context_layers if args.arch == "context" else 0,
        "threshold": threshold,
        "threshold_rule": f"max validation token precision with recall loss <= {args.max_recall_loss}",
        "max_recall_loss": args.max_recall_loss,
        "seed": args.seed,
        "epochs": args.epochs,
        "trained_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "train_seconds": train_seconds,
        "command": " ".join(sys.argv[1:] if argv is None else argv),
        "n_buckets_doc": args.n_buckets,
        "emb_dim_doc": args.emb_dim,
        "data": {"train_pages": len(train), "val_pages": len(val), "test_pages": len(test), **counts, **build_info},
        "metrics": {"validation_at_threshold": val_metrics, "test": test_metrics},
    }
    zh = None if args.zh_labels in (None, "", "none") or not args.build_from_shared else Path(args.zh_labels)
    cfg = save_model(args.out, "clutter", model, extra, model_card(extra, data_desc, hand_label_stats(zh)))
    print(json.dumps({"version": cfg["version"], "threshold": threshold, "validation": val_metrics,
                      "test": test_metrics}, indent=2))
    print(f"[train_clutter] wrote {args.out} in {time.time() - t0:.0f} s")
    return cfg


def _count_sources(records: list[dict]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in records:
        out[str(r.get("source"))] += 1
    return out


if __name__ == "__main__":
    main()
