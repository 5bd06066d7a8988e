"""Retrain the document quality model (plain Python + torch on CPU; no Spark, no GPU).

    python -m jobs.train_quality --build-from-shared --out models/quality
    python -m jobs.train_quality --data my_docs.jsonl --out out/models/quality-mine

Labeled data (``--data``, JSON Lines or Parquet), one record per document:
``{"text": str, "label": 1 | 0, "doc_id": str (optional), "group": str (optional),
"split": "train" | "test" (optional)}`` — 1 = good document, 0 = low quality. Records sharing a
``group`` (e.g. a page and its corruptions) always land in the same fold/split; without ``split`` a
hash of ``seed:group`` holds out 20 %. ``--corrupt`` adds one synthetic corruption (label 0) of every
positive training document.

``--build-from-shared`` makes labels from the clutter job's labeled gold pages (built or read from its
cache, see :mod:`jobs.train_clutter`): positives are the gold main texts and the content lines of
trafilatura's output; negatives are the clutter lines of a page joined (when >= 80 characters) and one
synthetic corruption per positive (:func:`pipeline.filter.quality.corrupt`: word shuffle, sentence
shuffle, repeated lines, repeated n-grams, truncation mid-sentence, clutter splices), the corruption
kind chosen by a hash of the page.

Features: hashed n-grams + document statistics (:mod:`pipeline.filter.quality`) + sentence-order
(coherence) features (:mod:`models.quality.coherence`; ``--no-coherence`` leaves them out).

Evaluation: ROC-AUC with k-fold cross-validation over page groups of the training split (as the
dots.llm1 report evaluates its quality classifier), then the final model trained on the whole training
split and scored on the held-out split. The recommended threshold keeps 95 % of held-out positives.
Coherence probe: positives vs. a fresh sentence shuffle of the same positives (never trained on), as
ROC-AUC per CV fold (on a third of the fold's positives, chosen by hash) and on the held-out split.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from models.common import HashedBagMLP, predict_groups, save_model, seed_everything, train_binary
from models.quality import featurize
from models.quality.coherence import N_COHERENCE_FEATURES
from pipeline.filter.features import Features
from pipeline.filter.labeled import read_records
from pipeline.filter.quality import CORRUPTIONS, N_DOC_FEATURES, corrupt
from pipeline.filter.text import roc_auc

REPO = Path(__file__).resolve().parent.parent


def _h(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


def docs_from_gold_pages(pages: list[dict], seed: int) -> list[dict]:
    """Quality-labeled documents from labeled gold pages (see the module doc)."""
    out: list[dict] = []
    for p in pages:
        gid = str(p["doc_id"])
        split = p.get("split")
        lines, labels = p["lines"], p["labels"]
        content = "\n".join(ln for ln, y in zip(lines, labels) if y == 1)
        clutter = "\n".join(ln for ln, y in zip(lines, labels) if y == 0)
        positives = []
        if p.get("gold_text") and len(p["gold_text"]) >= 200:
            positives.append(p["gold_text"])
        if len(content) >= 200:
            positives.append(content)
        for i, t in enumerate(positives):
            out.append({"doc_id": f"{gid}#pos{i}", "group": gid, "split": split, "text": t, "label": 1,
                        "_other": clutter})
        if len(clutter) >= 80:
            out.append({"doc_id": f"{gid}#clutter", "group": gid, "split": split, "text": clutter, "label": 0})
    return out


def add_corruptions(docs: list[dict], seed: int) -> list[dict]:
    """Each document plus one corruption (label 0) of every positive (``_other``: splice source)."""
    out = []
    for d in docs:
        if d.get("label") == 1:
            rng = random.Random(_h(f"{seed}:{d['doc_id']}"))
            kind = CORRUPTIONS[_h(f"{seed}:kind:{d['doc_id']}") % len(CORRUPTIONS)]
            bad = corrupt(d["text"], kind, rng, d.get("_other") or "")
            out.append({"doc_id": f"{d['doc_id']}#{kind}", "group": d.get("group"), "split": d.get("split"),
                        "text": bad, "label": 0, "corruption": kind})
        out.append(d)
    return out


def add_shuffles(docs: list[dict], seed: int, frac: float) -> list[dict]:
    """Extra sentence-shuffled negatives of a hash-chosen ``frac`` of the original positives (coherence
    augmentation, training folds only; an RNG stream apart from the corruptions and the probe)."""
    out = []
    for d in docs:
        if d["label"] != 1 or d.get("corruption") or _h(f"{seed}:aug:{d['doc_id']}") % 1000 >= frac * 1000:
            continue
        bad = corrupt(d["text"], "sentence_shuffle", random.Random(_h(f"{seed}:augrng:{d['doc_id']}")))
        if bad != d["text"]:
            out.append({"doc_id": f"{d['doc_id']}#aug_shuffle", "group": d["group"], "split": d["split"],
                        "text": bad, "label": 0, "corruption": "sentence_shuffle"})
    return out


def check_docs(docs: list[dict]) -> None:
    for i, d in enumerate(docs):
        if not isinstance(d.get("text"), str) or d.get("label") not in (0, 1, 0.0, 1.0, True, False):
            raise ValueError(f"record {i} ({d.get('doc_id')}): needs 'text' (string) and 'label' (1 good, 0 low quality)")


def featurize_each(docs: list[dict], n_buckets: int, coherence: bool = True, chunk: int = 256) -> list[Features]:
    """One single-document :class:`Features` per document (featurized once, reused by every fold)."""
    out: list[Features] = []
    for i in range(0, len(docs), chunk):
        part = docs[i : i + chunk]
        f = featurize([d["text"] for d in part], n_buckets, coherence, [float(d["label"]) for d in part])
        out.extend(f.slice(j, j + 1) for j in range(len(part)))
    return out


def shuffle_probe(docs: list[dict], seed: int) -> list[tuple[int, dict]]:
    """``(index of the positive, its sentence-shuffled copy)`` for every original positive of ``docs``
    with at least 3 sentences (a fresh shuffle: another RNG stream than the training corruptions)."""
    out = []
    for i, d in enumerate(docs):
        if d["label"] != 1 or d.get("corruption"):
            continue
        bad = corrupt(d["text"], "sentence_shuffle", random.Random(_h(f"{seed}:probe:{d['doc_id']}")))
        if bad != d["text"] and sum(d["text"].count(c) for c in ".!?。！？") >= 3:
            out.append((i, {"doc_id": f"{d['doc_id']}#probe", "text": bad, "label": 0}))
    return out


def probe_auc(model: HashedBagMLP, pos_f: list[Features], neg_f: list[Features]) -> float:
    if not pos_f:
        return float("nan")
    s = score(model, pos_f + neg_f)
    return roc_auc(np.r_[np.ones(len(pos_f)), np.zeros(len(neg_f))], s)


def without_coherence(feats: list[Features]) -> list[Features]:
    """The same documents with only the document statistics (for the ablation)."""
    return [dataclasses.replace(f, feats=f.feats[:, :N_DOC_FEATURES]) for f in feats]


def fit(feats: list[Features], args: argparse.Namespace) -> HashedBagMLP:
    order = list(range(len(feats)))
    random.Random(args.seed).shuffle(order)
    seed_everything(args.seed)  # the embedding init draws from torch's RNG
    n_feat = feats[0].feats.shape[1]
    model = HashedBagMLP(args.n_buckets, args.emb_dim, n_feat, args.hidden, context=False, dropout=args.dropout)
    return train_binary(model, [feats[i] for i in order], args.epochs, args.lr, args.batch_docs, args.seed,
                        log=lambda s: print("  " + s))


def score(model: HashedBagMLP, feats: list[Features]) -> np.ndarray:
    return np.concatenate(predict_groups(model, feats)) if feats else np.zeros(0)


def ablation_line(extra: dict) -> str:
    a = extra["metrics"].get("cv_without_coherence")
    if not a:
        return ""
    return (f"\n- Same folds without the coherence features: CV ROC-AUC {a['auc_mean']:.3f} ± {a['auc_std']:.3f}, "
            f"shuffle probe {a['shuffle_probe_auc_mean']:.3f} ± {a['shuffle_probe_auc_std']:.3f}.")


def model_card(extra: dict, data_desc: str) -> str:
    cv = extra["metrics"]["cv"]
    te = extra["metrics"]["test"]
    kinds = "\n".join(f"| {k} | {v['n']} | {v['rejected_at_threshold']:.3f} |" for k, v in te["by_kind"].items())
    return f"""# Document quality model (`{{version}}`)

One 0-1 score per document (1 = fluent, coherent, non-redundant, non-repetitive text); the `filter` stage
drops documents below `filter.quality.threshold` (`quality_below_threshold`; recommended here:
**{extra['threshold']}**, which keeps 95 % of held-out positives).

On real pages the threshold is set per language (`filter.quality.threshold_by_lang`, with the clean
bounds, on the dev split of the annotated pages in `data/labels`): `python -m bench.filters` reports the
good pages it removes and the junk it catches on the test split, per language.

- **Architecture**: hashed word/CJK-character unigrams + bigrams (`EmbeddingBag`, {extra['n_buckets']}
  buckets x {extra['emb_dim']} dims) + {N_DOC_FEATURES} Gopher-style document statistics (word length,
  duplicate lines, top/duplicate n-gram fractions, terminal punctuation, ...) + {extra['coherence_features']}
  sentence-order (coherence) features (`models/quality/coherence.py`: adjacent vs. distant sentence
  overlap, nearest-neighbour sentence adjacency, back-referring openers) -> MLP -> sigmoid.
- **Training data**: {data_desc}
- **Labels**: positives = human gold main texts and the content lines of trafilatura's output of the same
  pages; negatives = the clutter lines of a page joined, and one synthetic corruption per positive
  (word shuffle -> fluency, sentence shuffle / splice of clutter lines -> coherence, repeated lines and
  n-grams -> repetition/redundancy, truncation mid-sentence). Corruptions of a page stay in its fold.
  Coherence augmentation: {extra['data']['augmented_shuffles']} more sentence-shuffled copies of training
  positives, in the training folds only (validation and held-out figures use the documents above).
  Documents rejected by the stage-2 rules are not in the default artifact (bring them as label 0 with
  `--data`).
- **Trained**: {extra['trained_at']} with `python -m jobs.train_quality {extra['command']}` (seed
  {extra['seed']}, {extra['epochs']} epochs, {extra['train_seconds']:.0f} s on CPU).

## Metrics

- {cv['k']}-fold cross-validation (grouped by page) ROC-AUC on the training split:
  **{cv['auc_mean']:.3f} ± {cv['auc_std']:.3f}** (folds: {', '.join(f'{a:.3f}' for a in cv['fold_auc'])}).
- Coherence probe (positives vs. a fresh sentence shuffle of the same texts, never trained on): CV
  ROC-AUC **{cv['shuffle_probe_auc_mean']:.3f} ± {cv['shuffle_probe_auc_std']:.3f}**; held-out
  {te['shuffle_probe']['pairs']} pairs: ROC-AUC **{te['shuffle_probe']['auc']:.3f}**, shuffled copies rejected at
  the threshold: {te['shuffle_probe']['rejected_at_threshold']:.3f}.{ablation_line(extra)}
- Held-out split ({te['documents']} documents, {te['positives']} positive): ROC-AUC **{te['auc']:.3f}**;
  at the threshold, {te['positives_kept']:.3f} of positives kept, {te['negatives_rejected']:.3f} of
  negatives rejected.

Held-out rejection rate per negative kind at the threshold:

| kind | documents | rejected |
|---|---|---|
{kinds}
"""


def main(argv: list[str] | None = None) -> dict:
    """Run the job; s3:// and https:// inputs are staged into a local cache and an s3:// output is
    written locally, then published (pipeline.storage.staging; ``--cache-dir DIR``)."""
    from pipeline.storage.staging import remote_io

    return remote_io(argv, _main, inputs=("--data",), outputs=("--out",))


def _main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="jobs.train_quality", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="labeled documents (JSONL[.gz] or Parquet), format in the module doc")
    src.add_argument("--build-from-shared", nargs="?", const=str(REPO.parent / "shared" / "data"), metavar="DIR",
                     help="make labels from the gold sets under DIR (via the clutter job's labeled pages)")
    p.add_argument("--cache", default=None, help="the clutter job's labeled-pages cache (default: its default)")
    p.add_argument("--corrupt", action="store_true", help="with --data: add one corruption per positive")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None, help="local cache of s3:// and https:// inputs (docs/OBJECT_STORAGE.md)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (these small models train fastest single-threaded)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-docs", type=int, default=128)
    p.add_argument("--n-buckets", type=int, default=1 << 17)
    p.add_argument("--emb-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--test-percent", type=int, default=20)
    p.add_argument("--keep-positives", type=float, default=0.95, help="threshold keeps this share of positives")
    p.add_argument("--no-coherence", action="store_true", help="leave out the sentence-order features")
    p.add_argument("--extra-shuffles", type=float, default=1.0,
                   help="add a sentence-shuffled negative of this share of training positives (training only)")
    p.add_argument("--ablation", action="store_true",
                   help="also cross-validate without the coherence features (same documents and folds)")
    args = p.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)

    if args.build_from_shared:
        from jobs import train_clutter

        # The clutter job's labeled-page cache (named by its Chinese hand-label file), built if absent.
        zh = train_clutter.ZH_LABELS if train_clutter.ZH_LABELS.exists() else None
        cache = Path(args.cache) if args.cache else train_clutter.default_cache(zh)
        if cache.exists():
            pages = read_records(cache)
        else:
            pages, _ = train_clutter.build_from_shared(Path(args.build_from_shared), args.seed, 2, zh_labels=zh)
        docs = add_corruptions(docs_from_gold_pages(pages, args.seed), args.seed)
        data_desc = f"{len(pages)} labeled gold pages of ../shared/data (CleanEval, CleanPortalEval, Dragnet, L3S-GN1, Readability, trafilatura-eval) -> {len(docs)} documents"
    else:
        docs = read_records(args.data)
        check_docs(docs)
        if args.corrupt:
            docs = add_corruptions(docs, args.seed)
        data_desc = f"`{args.data}` ({len(docs)} documents{', + corruptions' if args.corrupt else ''})"
    check_docs(docs)
    for i, d in enumerate(docs):
        d.setdefault("group", d.get("doc_id") or str(_h(d["text"])))
        d["group"] = str(d["group"] if d["group"] is not None else d.get("doc_id"))
        if d.get("doc_id") is None:
            d["doc_id"] = f"{d['group']}#{i}"  # the probe and augmentation seed their RNG with it
        if d.get("split") not in ("train", "test"):
            d["split"] = "test" if _h(f"{args.seed}:{d['group']}") % 100 < args.test_percent else "train"
    train = [d for d in docs if d["split"] == "train"]
    test = [d for d in docs if d["split"] == "test"]
    # Training-only augmentation: extra sentence shuffles of training positives (never validated on).
    aug = add_shuffles(train, args.seed, args.extra_shuffles)
    if not train or not test:
        raise ValueError(f"need training and held-out documents; got {len(train)} train, {len(test)} test")
    print(f"[train_quality] documents: train {len(train)} ({Counter(d['label'] for d in train)}), test {len(test)}")

    t_feat = time.time()
    coh = not args.no_coherence
    train_f = featurize_each(train, args.n_buckets, coh)
    aug_f = featurize_each(aug, args.n_buckets, coh)
    test_f = featurize_each(test, args.n_buckets, coh)
    # Coherence probe sets: held-out positives, and a third (by hash) of the training positives for CV.
    probe_test = shuffle_probe(test, args.seed)
    probe_train = [(i, d) for i, d in shuffle_probe(train, args.seed) if _h(f"{args.seed}:p3:{d['doc_id']}") % 3 == 0]
    probe_test_f = featurize_each([d for _, d in probe_test], args.n_buckets, coh)
    probe_train_f = featurize_each([d for _, d in probe_train], args.n_buckets, coh)
    print(f"[train_quality] featurized {len(train_f) + len(aug_f) + len(test_f) + len(probe_test_f) + len(probe_train_f)} "
          f"documents in {time.time() - t_feat:.0f} s")
    # k-fold CV over groups of the training split.
    fold_auc, fold_probe, abl_auc, abl_probe = [], [], [], []
    ablation = args.ablation and coh
    for k in range(args.folds):
        in_fold = [_h(f"{args.seed}:fold:{d['group']}") % args.folds == k for d in train]
        tr = [x for x, f in zip(train_f, in_fold) if not f]
        tr += [x for x, d in zip(aug_f, aug) if _h(f"{args.seed}:fold:{d['group']}") % args.folds != k]
        va = [x for x, f in zip(train_f, in_fold) if f]
        print(f"[train_quality] fold {k + 1}/{args.folds}: train {len(tr)}, validate {len(va)}")
        m = fit(tr, args)
        fold_auc.append(roc_auc(np.concatenate([x.labels for x in va]), score(m, va)))
        pv = [j for j, (i, _) in enumerate(probe_train) if in_fold[i]]
        fold_probe.append(probe_auc(m, [train_f[probe_train[j][0]] for j in pv], [probe_train_f[j] for j in pv]))
        print(f"  fold AUC {fold_auc[-1]:.4f}, shuffle-probe AUC {fold_probe[-1]:.4f} ({len(pv)} pairs)")
        if ablation:
            m0 = fit(without_coherence(tr), args)  # same training documents, augmentation included
            abl_auc.append(roc_auc(np.concatenate([x.labels for x in va]), score(m0, without_coherence(va))))
            abl_probe.append(probe_auc(m0, without_coherence([train_f[probe_train[j][0]] for j in pv]),
                                       without_coherence([probe_train_f[j] for j in pv])))
            print(f"  without coherence features: fold AUC {abl_auc[-1]:.4f}, shuffle-probe AUC {abl_probe[-1]:.4f}")

    t1 = time.time()
    model = fit(train_f + aug_f, args)
    train_seconds = time.time() - t1
    s = score(model, test_f)
    y = np.array([float(d["label"]) for d in test])
    threshold = 0.5
    if (y == 1).any():  # two decimals, rounded down so that >= keep_positives of positives stay
        threshold = round(float(np.floor(float(np.quantile(s[y == 1], 1 - args.keep_positives)) * 100)) / 100, 2)
    by_kind: dict[str, dict] = defaultdict(lambda: {"n": 0, "rej": 0})
    for d, sc in zip(test, s):
        if d["label"] == 0:
            kind = d.get("corruption") or ("clutter_lines" if str(d.get("doc_id", "")).endswith("#clutter") else "negative")
            by_kind[kind]["n"] += 1
            by_kind[kind]["rej"] += int(sc < threshold)
    test_metrics = {
        "documents": len(test),
        "positives": int((y == 1).sum()),
        "auc": roc_auc(y, s),
        "positives_kept": float((s[y == 1] >= threshold).mean()) if (y == 1).any() else 0.0,
        "negatives_rejected": float((s[y == 0] < threshold).mean()) if (y == 0).any() else 0.0,
        "by_kind": {k: {"n": v["n"], "rejected_at_threshold": v["rej"] / max(1, v["n"])} for k, v in sorted(by_kind.items())},
    }
    probe_s = score(model, probe_test_f)
    test_metrics["shuffle_probe"] = {
        "pairs": len(probe_test),
        "auc": probe_auc(model, [test_f[i] for i, _ in probe_test], probe_test_f),
        "rejected_at_threshold": float((probe_s < threshold).mean()) if len(probe_s) else 0.0,
    }
    extra = {
        "task": "quality",
        "threshold": threshold,
        "seed": args.seed,
        "epochs": args.epochs,
        "n_buckets": args.n_buckets,
        "emb_dim": args.emb_dim,
        "coherence_features": 0 if args.no_coherence else N_COHERENCE_FEATURES,
        "trained_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "train_seconds": train_seconds,
        "command": " ".join(sys.argv[1:] if argv is None else argv),
        "data": {"train_documents": len(train), "augmented_shuffles": len(aug), "test_documents": len(test)},
        "metrics": {
            "cv": {"k": args.folds, "fold_auc": fold_auc, "auc_mean": float(np.mean(fold_auc)),
                   "auc_std": float(np.std(fold_auc)), "fold_shuffle_probe_auc": fold_probe,
                   "shuffle_probe_auc_mean": float(np.mean(fold_probe)), "shuffle_probe_auc_std": float(np.std(fold_probe))},
            "test": test_metrics,
        },
    }
    if ablation:
        extra["metrics"]["cv_without_coherence"] = {
            "fold_auc": abl_auc, "auc_mean": float(np.mean(abl_auc)), "auc_std": float(np.std(abl_auc)),
            "fold_shuffle_probe_auc": abl_probe, "shuffle_probe_auc_mean": float(np.mean(abl_probe)),
            "shuffle_probe_auc_std": float(np.std(abl_probe))}
    cfg = save_model(args.out, "quality", model, extra, model_card(extra, data_desc))
    print(json.dumps({"version": cfg["version"], "threshold": threshold, "metrics": extra["metrics"]}, indent=2))
    print(f"[train_quality] wrote {args.out} in {time.time() - t0:.0f} s")
    return cfg


if __name__ == "__main__":
    main()
