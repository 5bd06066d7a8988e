"""Train a new version of the category classifier (``models/category``) on labeled or silver data.

    # labels you bring (JSONL or Parquet with `text` and `category` = leaf id or English leaf name)
    python -m jobs.train_category --input labels.jsonl --out models/category-mine
    # no labels: weak keyword/URL labels on your documents (WARC, a stage output, or JSONL with text)
    python -m jobs.train_category --bootstrap --input data/*.warc.gz --out models/category-silver \\
        --exclude-urls data/category_eval.jsonl --eval-labels data/category_eval.jsonl
    # evaluate an existing model on the hand-labeled set (texts looked up by URL in --input)
    python -m jobs.train_category --evaluate models/category --input data/*.warc.gz \\
        --eval-labels data/category_eval.jsonl

Steps: read documents -> labels (given, or weak labels with --bootstrap; unlabeled docs are left
out) -> drop exact duplicate texts -> split a held-out set by a hash of the URL (or text) -> train
(deterministic) -> write ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md`` to ``--out`` ->
reload the written model and report top-1 / top-5 / domain accuracy on the held-out split and on
``--eval-labels``. Runs on the driver with torch (no Spark): a fastText-size model trains on a few
hundred thousand documents per core-minute.
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
from collections import Counter
from pathlib import Path

import numpy as np

BETA_GRID = (0.0, 1.0, 2.0, 4.0, 8.0)
DEFAULT_BETA = 4.0
TEMPERATURE_GRID = tuple(round(0.25 * 1.25**i, 4) for i in range(16))  # 0.25 .. ~7.1

DEFAULTS = {
    "num_buckets": 1 << 17,
    "dim": 0,  # hashed n-gram bag (0 = off)
    "piece_dim": 256,  # pretrained WordLlama piece bag (0 = off)
    "piece_scale": 0.3,
    "sparse": 1,  # sparse Adam for the bags (1) or dense Adam over every row (0)
    "max_chars": 4000,
    "max_features": 4096,
    "epochs": 10,
    "lr": 0.01,
    "batch_size": 32,
    "weight_decay": 0.0,
    "seed": 1234,
    "title": 1,  # read the page title (a line in front of the text) when the input has one
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="jobs.train_category",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input", nargs="+", required=True, help="WARC, Parquet (file/folder) or JSONL inputs")
    p.add_argument("--out", help="folder of the new model version (created)")
    p.add_argument("--cache-dir", default=None, help="local cache of s3:// and https:// inputs (docs/OBJECT_STORAGE.md)")
    p.add_argument(
        "--bootstrap", action="store_true", help="label documents with the weak keyword/URL labeler"
    )
    p.add_argument("--evaluate", metavar="MODEL", help="only evaluate this model folder (no training)")
    p.add_argument("--taxonomy", default=None, help="taxonomy YAML (default conf/taxonomy.yaml)")
    p.add_argument(
        "--keywords", default=None, help="weak-label keywords (default conf/category_keywords.yaml)"
    )
    p.add_argument(
        "--exclude-urls", nargs="*", default=[], help="JSONL files whose `url`s are never trained on"
    )
    p.add_argument(
        "--eval-labels",
        nargs="*",
        default=[],
        help="JSONL {url, category[, split, lang]}: hand-labeled evaluation set; rows with split=dev choose "
        "the keyword-prior weight, the others (split=test or none) are only reported",
    )
    p.add_argument(
        "--keyword-prior",
        default="auto",
        help="weight beta of the keyword prior (logits + beta*log1p(keyword scores)); 'auto' = best of "
        f"{list(BETA_GRID)} on the dev rows of --eval-labels (no dev rows: {DEFAULT_BETA} with --bootstrap, "
        "else 0); 0 = network only",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="data/labels/labels.jsonl: annotator labels of the WARC --input pages (texts from stage 1). Their "
        "dev split trains (tune sites choose beta), their test split is only reported; pages of test sites "
        "are never trained on, not even with weak labels",
    )
    p.add_argument(
        "--extra-labels",
        default=None,
        help="with --labels: data/labels/category_extra.jsonl, annotator labels of gold texts (dev-split rows train; "
        "texts rebuilt from ../shared/data; pages overlapping a test page are never used)",
    )
    p.add_argument(
        "--synthetic",
        default=None,
        help="data/labels/synthetic_category.jsonl: written example documents {leaf, lang, genre, text} per leaf "
        "(guideline data/labels/SYNTHETIC_GUIDELINE.md); they train, never evaluate",
    )
    p.add_argument("--synthetic-weight", type=float, default=4.0, help="weight of a written example document")
    p.add_argument(
        "--prior-chars",
        type=int,
        default=2000,
        help="characters of each text the keyword prior reads (its Python matching is most of the inference "
        "time; on the tune sites 1,000-4,000 give the same accuracy)",
    )
    p.add_argument(
        "--prior-url-weight",
        type=float,
        default=3.0,
        help="score the keyword prior adds per URL word of a leaf's `url` list (the weak labeler's URL rule); "
        "0 = the prior reads the text only",
    )
    p.add_argument("--label-weight", type=float, default=4.0, help="weight of an annotator label vs a weak one")
    p.add_argument("--alt-weight", type=float, default=0.5, help="weight of each accepted alternative (x label weight)")
    p.add_argument("--tune-percent", type=int, default=30, help="dev sites held out of training to choose beta")
    p.add_argument("--no-refit", action="store_true",
                   help="with --labels: do not retrain on all dev sites (tune sites included) once beta and "
                        "the temperature are chosen")
    p.add_argument("--holdout", type=float, default=0.1, help="held-out fraction (hash of URL or text)")
    p.add_argument(
        "--no-seed-docs", action="store_true", help="bootstrap without the taxonomy pseudo-documents"
    )
    p.add_argument(
        "--write-silver", default=None, help="also write the silver labels as JSONL (url, category)"
    )
    p.add_argument("--max-docs", type=int, default=0, help="read at most this many documents (0 = all)")
    p.add_argument("--date", default=None, help="date in the version string (default: today, UTC)")
    for k, v in DEFAULTS.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v, help="hyper-parameter")
    args = p.parse_args(argv)
    if args.labels and args.eval_labels:
        p.error("give --labels or --eval-labels, not both")
    if args.extra_labels and not args.labels:
        p.error("--extra-labels needs --labels (its rows join the dev split of the annotator labels)")
    if not args.evaluate and not args.out:
        p.error("--out is required unless --evaluate MODEL")
    if args.prior_chars <= 0:
        p.error("--prior-chars must be > 0")
    if args.prior_url_weight < 0:
        p.error("--prior-url-weight must be >= 0")
    if not 0.0 <= args.holdout < 1.0:
        p.error("--holdout must be in [0, 1)")
    if args.keyword_prior != "auto":
        try:
            if float(args.keyword_prior) < 0:
                raise ValueError
        except ValueError:
            p.error("--keyword-prior must be 'auto' or a number >= 0")
    return args


def _unit_hash(key: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def _read_jsonl_urls(paths: list[str]) -> list[dict]:
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    obj = json.loads(line)
                    if "url" not in obj:
                        raise ValueError(f"{p}:{i}: needs a 'url' field")
                    rows.append(obj)
    return rows


def collect(
    args: argparse.Namespace, tax, log=print, labels: bool = True
) -> tuple[list[dict], dict[str, dict]]:
    """Labeled rows ``{text, title, category, url}`` and a URL -> ``{text, title}`` map of every document
    read (``labels=False``: only the map, for evaluating a model)."""
    from pipeline.category.corpus import iter_documents
    from pipeline.category.taxonomy import load_keywords
    from pipeline.category.weak_labels import WeakLabeler, load_config

    excluded = {r["url"] for r in _read_jsonl_urls(args.exclude_urls)}
    labeler = (
        WeakLabeler(tax, load_keywords(args.keywords, tax), load_config(args.keywords))
        if args.bootstrap
        else None
    )
    rows: list[dict] = []
    url_text: dict[str, dict] = {}
    seen: set[str] = set()
    bad: Counter = Counter()
    n_read = n_excl = n_dup = n_unlabeled = 0
    for doc in iter_documents(args.input):
        if args.max_docs and n_read >= args.max_docs:
            break
        n_read += 1
        text, url, title = doc.get("text") or "", doc.get("url") or "", doc.get("title") or None
        if url:
            url_text.setdefault(url, {"text": text, "title": title})
        if not labels:
            continue
        if url and url in excluded:
            n_excl += 1
            continue
        if labeler is not None:
            wl = labeler.label(text, url)
            if wl is None:
                n_unlabeled += 1
                continue
            cat = wl.category
        else:
            if doc.get("category") is None:
                bad["<missing>"] += 1
                continue
            try:
                cat = tax.id_of(doc["category"])
            except ValueError:
                bad[str(doc["category"])] += 1
                continue
        key = hashlib.md5(text.strip().encode("utf-8")).hexdigest()
        if not text.strip() or key in seen:
            n_dup += 1
            continue
        seen.add(key)
        rows.append({"text": text, "title": title, "category": cat, "url": url})
    if bad:
        raise ValueError(
            f"{sum(bad.values())} rows have a missing or unknown `category` (e.g. {list(bad)[:5]}); "
            "give a leaf id 0..199 or an English leaf name of conf/taxonomy.yaml, or use --bootstrap"
        )
    log(
        f"read {n_read} documents: {len(rows)} labeled, {n_unlabeled} without a confident weak label, "
        f"{n_excl} excluded by URL, {n_dup} empty or duplicate"
    )
    return rows, url_text


def eval_set(paths: list[str], url_text: dict[str, dict], tax, log=print) -> list[dict]:
    """Hand-labeled rows found in the inputs: ``{text, title, url, category (id), split, lang}``."""
    rows, missing = [], 0
    for r in _read_jsonl_urls(paths):
        d = url_text.get(r["url"])
        if d is None:
            missing += 1
            continue
        rows.append(
            {"text": d["text"], "title": d["title"], "url": r["url"], "category": tax.id_of(r["category"]), "split": r.get("split") or "test", "lang": r.get("lang") or ""}
        )
    if missing:
        log(f"eval: {missing} labeled URLs not found in the inputs (their text is needed)")
    return rows


def predict_rows(pred, rows: list[dict], k: int = 5) -> np.ndarray:
    """int64 [N, k] top leaves of rows ``{text, url?, title?}``, as the filter stage predicts them."""
    top, _ = pred.predict_topk([r["text"] for r in rows], k, urls=[r.get("url") for r in rows],
                               titles=[r.get("title") for r in rows])
    return top


def evaluate(pred, rows: list[dict], tax) -> dict:
    from pipeline.category.metrics import evaluate_topk

    return evaluate_topk(predict_rows(pred, rows), [r["category"] for r in rows], tax)


def evaluate_rows(pred, rows: list[dict], tax) -> dict:
    """Figures on all rows, then per split (dev/test) and per language within each split."""
    def ev(sub: list[dict]) -> dict:
        return evaluate(pred, sub, tax)

    out = {"all": ev(rows)}
    for sp in sorted({r["split"] for r in rows}):
        sub = [r for r in rows if r["split"] == sp]
        out[sp] = ev(sub)
        for lang in ("en", "zh", "de"):
            lsub = [r for r in sub if r["lang"] == lang]
            if lsub:
                out[f"{sp}/{lang}"] = ev(lsub)
        other = [r for r in sub if r["lang"] not in ("en", "zh", "de")]
        if other:
            out[f"{sp}/other"] = ev(other)
    return out


def choose_beta(pred, dev: list[dict], tax, log=print) -> tuple[float, dict]:
    """The grid value of beta with the best dev top-1 (ties: top-5, then the smaller beta)."""
    from pipeline.category.metrics import evaluate_accepted, evaluate_topk

    texts = pred.model_texts([r["text"] for r in dev], [r.get("title") for r in dev])
    net = pred.network_logits(texts).astype(np.float64)
    kw = np.log1p(pred_keyword_scores(pred, texts, [r.get("url") for r in dev]))
    gold = [r["category"] for r in dev]
    table = {}
    for b in BETA_GRID:
        top = np.argsort(-(net + b * kw), axis=1, kind="stable")[:, :5]
        if all("accepted" in r for r in dev):  # annotator labels: the best leaf or an accepted alternative
            m = evaluate_accepted(top, [r["accepted"] for r in dev], tax)
        else:
            m = evaluate_topk(top, gold, tax)
        table[b] = (m["top1"], m["top5"])
        log(f"keyword prior beta {b}: dev top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f} (n = {m['n']})")
    best = max(BETA_GRID, key=lambda b: (table[b][0], table[b][1], -b))
    return best, {str(b): {"top1": v[0], "top5": v[1]} for b, v in table.items()}


def pred_keyword_scores(pred, texts: list[str], urls: list[str | None] | None = None) -> np.ndarray:
    """Keyword scores with the prior's settings even while the predictor's beta is still 0."""
    return pred.labeler.score_matrix(texts, pred.prior_chars, urls)


def fit_temperature(logits: np.ndarray, gold: list[int]) -> float:
    """Temperature minimising the mean negative log-likelihood on held-out rows (Guo et al., 2017)."""
    if len(gold) == 0:
        return 1.0
    y = np.asarray(gold)
    best, best_nll = 1.0, float("inf")
    for t in TEMPERATURE_GRID:
        z = logits.astype(np.float64) / t
        z -= z.max(axis=1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))
        if nll < best_nll - 1e-9:
            best, best_nll = t, nll
    return best


def network_description(cfg: dict) -> str:
    """One paragraph of the model card: the network's inputs, layers and training."""
    bags = []
    if cfg.get("dim"):
        bags.append(
            f"hashed word uni/bigrams, 5-char word prefixes and CJK character uni/bigrams -> {cfg['num_buckets']} "
            f"buckets -> EmbeddingBag(mean, dim {cfg['dim']})"
        )
    if cfg.get("piece_dim"):
        bags.append(
            f"WordLlama pieces of the same words ({cfg.get('piece_source', 'wordllama')}; at most 4 pieces a word) "
            f"-> EmbeddingBag(mean, dim {cfg['piece_dim']}, initialised from the first {cfg['piece_dim']} "
            f"columns of WordLlama's embeddings and fine-tuned) -> L2-normalised x {cfg.get('piece_scale', 1.0)} "
            f"* sqrt({cfg['piece_dim']})"
        )
    opt = "sparse Adam for the bags, Adam for the linear layer" if cfg.get("sparse") else "Adam"
    return (
        f"Network over the first {cfg['max_chars']} characters"
        + (" of the page title (a line of its own, when the page has one) followed by the text" if cfg.get("title") else "")
        + ": " + "; ".join(bags) + (" (concatenated)" if len(bags) > 1 else "")
        + f" -> linear -> {cfg['num_classes']} leaves of `conf/taxonomy.yaml`. Weights float16 (safetensors). "
        f"Deterministic training (seed {cfg['seed']}, one thread): {cfg['epochs']} epochs, {opt}, lr {cfg['lr']} "
        f"decayed linearly, batch {cfg['batch_size']}, label smoothing 0.05."
    )


def write_weights(model, out: Path) -> str:
    """Write the weights (float16 safetensors); returns their sha256."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items()}
    w_path = out / "model.safetensors"
    save_file(state, str(w_path), metadata={"format": "pt"})
    return hashlib.sha256(w_path.read_bytes()).hexdigest()


def write_config(cfg: dict, out: Path, date: str, weights_sha256: str) -> dict:
    """Write config.json; the version hashes the weights and every setting that changes predictions."""
    decisive = {k: cfg.get(k) for k in ("keyword_prior", "temperature", "num_buckets", "max_chars", "max_features", "title")}
    digest = hashlib.sha256(
        (weights_sha256 + json.dumps(decisive, sort_keys=True, ensure_ascii=False)).encode("utf-8")
    ).hexdigest()
    cfg = dict(cfg, version=f"category-{date}-{digest[:8]}", weights_sha256=weights_sha256, dtype="float16", date=date)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return cfg


def model_card(cfg: dict, metrics: dict, data: dict) -> str:
    def fmt(m: dict | None) -> str:
        if not m or not m.get("n"):
            return "not measured"
        return (
            f"n = {m['n']}: top-1 {m['top1']:.3f}, top-5 {m.get('top5', float('nan')):.3f}, "
            f"domain {m['domain']:.3f}"
            + (f", macro top-1 {m['macro_top1']:.3f}" if m.get("macro_top1") is not None else "")
        )

    def table(ev: dict, ev_net: dict) -> list[str]:
        out = ["| rows | n | top-1 | top-5 | domain | network alone: top-1 / top-5 / domain |", "|---|---|---|---|---|---|"]
        for key, m in ev.items():
            if not m.get("n"):
                continue
            n2 = ev_net.get(key) or {}
            out.append(
                f"| {key} | {m['n']} | {m['top1']:.3f} | {m['top5']:.3f} | {m['domain']:.3f} | "
                f"{n2.get('top1', float('nan')):.3f} / {n2.get('top5', float('nan')):.3f} / {n2.get('domain', float('nan')):.3f} |"
            )
        return out

    kp = cfg.get("keyword_prior") or {}
    lines = [
        f"# Category classifier `{cfg['version']}`",
        "",
        f"Date: {cfg['date']}. Written by `jobs/train_category.py` ({' '.join(data['command'])}).",
        "",
        "## Model",
        network_description(cfg),
        "",
        f"Keyword prior: final logits = (network logits + beta * log1p(keyword scores)) / temperature, with "
        f"beta = {kp.get('beta', 0.0)} ({data['beta_how']}) and temperature = {cfg.get('temperature', 1.0)} "
        f"({data.get('temperature_how') or 'fitted on the held-out split by negative log-likelihood, so `category_prob` is calibrated on silver labels'}). "
        f"Keyword scores are the weak labeler's per-leaf scores of the first {kp.get('max_chars', cfg['max_chars'])} "
        + ("characters the network reads (title included; " if cfg.get("title") else "characters of the text (")
        + "English, Chinese and German lists, stored in config.json)"
        + (f", plus {kp['url_weight']} per word of the page URL's host and path in a leaf's URL list (hosts under "
           "the reserved `.test` domain give none)." if kp.get("url_weight") else ". URL words are not used at inference."),
        "",
        "## Training data and labels",
        data["labels_how"],
        "",
        f"- inputs: {', '.join(data['inputs'])}",
        f"- labeled documents: {data['n_labeled']} ({data['n_train']} train, {data['n_holdout']} held out "
        f"by a hash of the URL); classes with at least one training document: {data['n_classes']}",
        f"- pseudo-documents from the taxonomy (names, descriptions, keywords): {data['n_seed']}",
        *([f"- written example documents (`{data['synthetic']}`: {data['n_synthetic']} short page texts written for "
           f"this taxonomy, {data['synthetic_per_leaf']}, not taken from any crawl), weight "
           f"{data['synthetic_weight']}"] if data.get("n_synthetic") else []),
        f"- most frequent labels: {', '.join(f'{k} ({v})' for k, v in data['top_labels'])}",
        "",
        "## Metrics",
        f"- held-out split ({data['holdout_kind']}): {fmt(metrics.get('holdout'))}",
        f"- hand-labeled evaluation set ({', '.join(data['eval_files']) or 'none given'}): "
        f"{fmt((metrics.get('eval') or {}).get('test' if data.get('accepted') else 'all'))}",
        "",
        *([data["accepted"], ""] if data.get("accepted") else []),
        "Held-out figures on silver labels measure agreement with the weak labeler, not accuracy; the "
        "hand-labeled set is the real measure, and only its `test` rows are untouched by choices (beta "
        "was chosen on `dev`). Domain accuracy counts a top-1 prediction in the gold leaf's domain as "
        "correct. Languages are the set's `lang` field.",
    ]
    ev = metrics.get("eval") or {}
    if ev:
        lines += ["", *table(ev, metrics.get("eval_network_only") or {})]
    if metrics.get("beta_on_dev"):
        lines += ["", "Keyword-prior weight on the dev rows (top-1 / top-5): " + ", ".join(
            f"beta {b}: {v['top1']:.3f} / {v['top5']:.3f}" for b, v in metrics["beta_on_dev"].items())]
    sa = metrics.get("second_annotator") or {}
    if sa:
        lines += ["", "Second annotator (test pages that a second annotator labelled independently, "
                  "`--extra-labels` test rows): model top-1 against the first annotator's leaves / against "
                  "either annotator's leaves; the second annotator's best leaf against the first annotator's "
                  "leaves (a careful human on this metric); model errors the second annotator accepts:", "",
                  "| rows | n | model top-1 | model top-1, either annotator | second annotator | model errors accepted by the second |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['n']} | {v['model_top1']:.3f} | {v['model_top1_either_annotator']:.3f} | "
                  f"{v['second_annotator_best_accepted']:.3f} | {v['model_errors_second_annotator_accepts']} of "
                  f"{v['model_errors']} |" for k, v in sa.items()]
    conf = (ev.get("test") or {}).get("confusions")
    if conf:
        lines += ["", "Most frequent confusions on the test rows (gold -> predicted):", ""]
        lines += [f"- {c}" for c in conf]
    lines += [
        "",
        "## Limits",
        "Weak labels come from English and Chinese keyword lists (German for 75 common leaves) and URL "
        "words, so other languages reach the model mostly through URL words and shared names; rare "
        "leaves have few or no real training pages. The sample crawl has ~70 Chinese pages, about 40 of "
        "them in the hand-labeled set, so Chinese predictions rest on the keyword prior, the pretrained "
        "pieces (the Llama-2 vocabulary covers common CJK characters, rarer ones fall back to bytes) and "
        "the written Chinese examples, and the Chinese figures have wide error bars (43 test pages). "
        "Retrain on your own labels (`jobs/train_category.py --input labels.jsonl`) for production use.",
        "",
    ]
    return "\n".join(lines)


def labelled_corpus(args: argparse.Namespace, tax, log=print) -> tuple[list[dict], list[dict], list[dict]]:
    """``--labels``: (train rows ``{text, category, url, weight, human}``, tune rows, test rows).

    Stage 1 is re-run on the WARC ``--input`` (cached, :func:`pipeline.filter.evalset.stage1_documents`).
    Pages of test-split sites only feed the test rows. On dev sites, labelled pages of ``--tune-percent``
    of the sites are held out to choose beta; the other labelled pages train with weight
    ``--label-weight`` (each accepted alternative once more with ``--alt-weight`` of it); with
    ``--bootstrap`` every other page with a confident weak label trains with weight 1."""
    from pipeline.category.taxonomy import load_keywords
    from pipeline.category.weak_labels import WeakLabeler, load_config
    from pipeline.filter import evalset

    warcs = [Path(p) for p in args.input]
    not_warc = [str(p) for p in warcs if not p.name.endswith((".warc.gz", ".warc"))]
    if not_warc:
        raise ValueError(f"--labels needs the WARC files the labels were made on as --input, not {not_warc}")
    docs = evalset.stage1_documents(warcs, log=log)
    labels = {r["id"]: r for r in evalset.read_labels(args.labels)}
    labeler = (
        WeakLabeler(tax, load_keywords(args.keywords, tax), load_config(args.keywords)) if args.bootstrap else None
    )
    train: list[dict] = []
    tune: list[dict] = []
    test: list[dict] = []
    seen: set[str] = set()
    n: Counter = Counter()
    for doc_id in sorted(docs):
        d = docs[doc_id]
        text = d.get("text") or ""
        if d.get("drop_reason") or not text.strip():
            continue
        site = evalset.site_of(d["url"], d.get("domain"))
        lab = labels.get(doc_id)
        acc = [tax.id_of(c) for c in evalset.accepted(lab)] if lab else []
        row = {"text": text, "url": d["url"], "title": d.get("title") or None, "lang": d.get("lang") or ""}
        if evalset.split_of(site) == "test":
            n["test_site_pages"] += 1
            if acc:
                test.append({**row, "category": acc[0], "accepted": acc, "split": "test"})
            continue
        if acc and _unit_hash("tune:" + site, args.seed) * 100 < args.tune_percent:
            tune.append({**row, "category": acc[0], "accepted": acc, "split": "dev"})
            continue
        key = hashlib.md5(text.strip().encode("utf-8")).hexdigest()
        if key in seen:
            n["duplicate_text"] += 1
            continue
        seen.add(key)
        if acc:
            n["annotated"] += 1
            train.append({**row, "category": acc[0], "weight": args.label_weight, "human": True})
            for a in acc[1:]:
                train.append({**row, "category": a, "weight": args.label_weight * args.alt_weight, "human": True})
        elif labeler is not None:
            wl = labeler.label(text, d["url"])
            if wl is None:
                n["no_weak_label"] += 1
                continue
            n["weak"] += 1
            train.append({**row, "category": wl.category, "weight": 1.0, "human": False})
    if getattr(args, "extra_labels", None) and not args.evaluate:
        titles = {d["url"]: d.get("title") or None for d in docs.values() if d.get("url")}
        train += extra_rows(args, tax, tune, test, n, log, titles)
    log(f"labelled corpus: {dict(n)}; {len(train)} training rows, {len(tune)} tune rows, {len(test)} test rows")
    args.corpus_counts = dict(n)
    return train, tune, test


def extra_how(args: argparse.Namespace) -> str:
    """The model card's sentence on ``--extra-labels`` (counts of :func:`extra_rows`)."""
    if not args.extra_labels:
        return ""
    c = getattr(args, "corpus_counts", {})
    return (
        f" Also the second annotation of `{args.extra_labels}` (annotator labels of the gold main texts of the "
        f"dev-site pages, rebuilt from ../shared/data): {c.get('extra', 0)} pages train from the start, "
        f"{c.get('extra_refit_only', 0)} (texts of tune pages) only in the refit, {c.get('extra_overlaps_test', 0)} "
        "left out because their text overlaps a test page; its test-split rows are only used for the "
        "second-annotator figures."
    )


def second_annotator(pred, test: list[dict], extra_path: str, tax) -> dict:
    """On the test pages that a second annotator also labelled (``--extra-labels`` test rows, matched by
    URL), per language: the model's top-1 against the first annotator's accepted leaves (the usual
    figure), against the union of both annotators' leaves, and the second annotator's best leaf against
    the first's accepted leaves (how often a careful human "scores" on this metric); plus the share of
    the model's errors that the second annotator accepts."""
    from pipeline.category.extra_labels import read_extra

    second = {}
    for r in read_extra(extra_path):
        if r["split"] == "test":
            second[r["url"]] = [tax.id_of(c) for c in [r["category"], *r["category_alts"]]]
    rows = [r for r in test if r["url"] in second]
    top = predict_rows(pred, rows, 1) if rows else np.zeros((0, 1), np.int64)
    out: dict = {}
    for lang in ["all", *sorted({r["lang"] for r in rows})]:
        idx = [i for i, r in enumerate(rows) if lang == "all" or r["lang"] == lang]
        if not idx:
            continue
        n = len(idx)
        a_ok = [int(top[i, 0]) in rows[i]["accepted"] for i in idx]
        union_ok = [int(top[i, 0]) in set(rows[i]["accepted"]) | set(second[rows[i]["url"]]) for i in idx]
        human = [second[rows[i]["url"]][0] in rows[i]["accepted"] for i in idx]
        errs = [i for i, ok in zip(idx, a_ok) if not ok]
        out[lang] = {
            "n": n,
            "model_top1": round(sum(a_ok) / n, 4),
            "model_top1_either_annotator": round(sum(union_ok) / n, 4),
            "second_annotator_best_accepted": round(sum(human) / n, 4),
            "model_errors": len(errs),
            "model_errors_second_annotator_accepts": sum(int(top[i, 0]) in second[rows[i]["url"]] for i in errs),
        }
    return out


def synthetic_per_leaf(path: str) -> str:
    """The model card's count of written examples, e.g. "10 per leaf in en, 10 in zh" (the most common
    count per leaf and language)."""
    per: dict[str, Counter] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                per.setdefault(r.get("lang") or "?", Counter())[r.get("leaf")] += 1
    parts = [f"{Counter(c.values()).most_common(1)[0][0]} {'per leaf in ' if i == 0 else 'in '}{lang}"
             for i, (lang, c) in enumerate(sorted(per.items()))]
    return ", ".join(parts)


def read_synthetic(path: str, tax) -> list[tuple[str, int]]:
    """(text, leaf id) of the written example documents; a bad line stops with its number."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if not (r.get("text") or "").strip():
                raise ValueError(f"{path}:{i}: empty `text`")
            try:
                out.append((r["text"], tax.id_of(r["leaf"])))
            except (KeyError, ValueError) as e:
                raise ValueError(f"{path}:{i}: `leaf` must be an English leaf name of the taxonomy ({e})") from e
    return out


def extra_rows(args: argparse.Namespace, tax, tune: list[dict], test: list[dict], n: Counter, log=print,
               titles: dict[str, str | None] | None = None) -> list[dict]:
    """Training rows of ``--extra-labels`` (gold texts of dev-site pages, :mod:`pipeline.category.extra_labels`),
    with the title of the stage-1 page of the same URL (``titles``).

    A page whose text overlaps a test row's text (:func:`~pipeline.category.extra_labels.overlapping`) is
    never used; one overlapping a tune row is marked ``refit_only`` (kept out until beta and the
    temperature are chosen). Weights as for ``--labels``."""
    from pipeline.category.extra_labels import load_extra, overlapping

    rows, dropped = load_extra(args.extra_labels)
    for k, v in dropped.items():
        n[f"extra_{k}"] += v
    texts = [r["text"] for r in rows]
    ov_test = overlapping(texts, [r["text"] for r in test])
    ov_tune = overlapping(texts, [r["text"] for r in tune])
    out: list[dict] = []
    for r, in_test, in_tune in zip(rows, ov_test, ov_tune):
        if in_test:
            n["extra_overlaps_test"] += 1
            continue
        n["extra_refit_only" if in_tune else "extra"] += 1
        for i, c in enumerate([r["category"], *r["category_alts"]]):
            w = args.label_weight * (1.0 if i == 0 else args.alt_weight)
            out.append({"text": r["text"], "url": r["url"], "title": (titles or {}).get(r["url"]),
                        "lang": r["lang"], "category": tax.id_of(c),
                        "weight": w, "human": True, "refit_only": in_tune})
    return out


def evaluate_accepted_rows(pred, rows: list[dict], tax) -> dict:
    """Accuracy against the best leaf or an accepted alternative, per split and language."""
    from pipeline.category.metrics import evaluate_accepted

    def ev(sub: list[dict]) -> dict:
        return evaluate_accepted(predict_rows(pred, sub), [r["accepted"] for r in sub], tax)

    out = {}
    for sp in sorted({r["split"] for r in rows}):
        sub = [r for r in rows if r["split"] == sp]
        out[sp] = ev(sub)
        for lang in sorted({r["lang"] for r in sub}):
            out[f"{sp}/{lang}"] = ev([r for r in sub if r["lang"] == lang])
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the job; s3:// and https:// inputs are staged into a local cache and an s3:// output is
    written locally, then published (pipeline.storage.staging; ``--cache-dir DIR``)."""
    from pipeline.storage.staging import remote_io

    return remote_io(argv, _main, inputs=("--input", "--evaluate"), outputs=("--out",))


def _main(argv: list[str]) -> dict:
    args = parse_args(argv)
    from models.category import load
    from pipeline.category.features import with_title
    from pipeline.category.taxonomy import load_keywords, load_taxonomy

    tax = load_taxonomy(args.taxonomy)
    t0 = time.time()
    if args.evaluate and args.labels:
        _, tune, test = labelled_corpus(args, tax)
        pred = load(args.evaluate, "cpu", tax)
        res = {"model": pred.version, "eval": evaluate_accepted_rows(pred, tune + test, tax)}
        if args.extra_labels:
            res["second_annotator"] = second_annotator(pred, test, args.extra_labels, tax)
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return res
    if args.evaluate:
        _, url_text = collect(args, tax, labels=False)
        pred = load(args.evaluate, "cpu", tax)
        res = {"model": pred.version, "eval": evaluate_rows(pred, eval_set(args.eval_labels, url_text, tax), tax)}
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return res

    ev_rows: list[dict] = []
    if args.labels:
        rows, tune, test = labelled_corpus(args, tax)
        ev_rows = tune + test
        url_text: dict[str, str] = {}
    else:
        rows, url_text = collect(args, tax)
    if not rows:
        raise SystemExit(
            "no labeled documents: check --input (and the `category` column, or use --bootstrap)"
        )
    train, hold, refit_only = [], [], []
    for r in rows:
        if r.get("refit_only"):
            refit_only.append(r)
        elif r.get("human"):  # annotator labels all train; the temperature is fitted on weak labels
            train.append(r)
        else:
            (hold if _unit_hash(r["url"] or r["text"], args.seed) < args.holdout else train).append(r)
    if args.write_silver:
        with open(args.write_silver, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"url": r["url"], "category": tax.leaves[r["category"]].en}) + "\n")
    keywords = load_keywords(args.keywords, tax)
    seed_docs = []
    if args.bootstrap and not args.no_seed_docs:
        from pipeline.category.weak_labels import seed_documents

        seed_docs = seed_documents(tax, keywords)
    synth = read_synthetic(args.synthetic, tax) if args.synthetic else []
    cfg = {k: getattr(args, k) for k in DEFAULTS}

    def model_text(r: dict) -> str:  # what the network reads of a row (the predictor's model_texts)
        return with_title(r["text"], r.get("title")) if cfg["title"] else r["text"]

    texts = [model_text(r) for r in train] + [t for t, _ in seed_docs] + [t for t, _ in synth]
    labels = [r["category"] for r in train] + [c for _, c in seed_docs] + [c for _, c in synth]
    weights = [r.get("weight", 1.0) for r in train] + [1.0] * len(seed_docs) + [args.synthetic_weight] * len(synth)
    piece_init = None
    if cfg["piece_dim"]:
        from models.category.model import pretrained_pieces
        from pipeline.category.features import wordllama_files

        piece_init = pretrained_pieces()
        if not 0 < cfg["piece_dim"] <= piece_init.shape[1]:
            raise SystemExit(f"--piece-dim must be in 1..{piece_init.shape[1]} (or 0 = no pretrained pieces)")
        cfg["pieces"] = int(piece_init.shape[0])
        cfg["piece_source"] = "wordllama==0.4.0.post1 l2_supercat (Llama-2 tokenizer, 32,000 x 256)"
        cfg["piece_tokenizer_sha1"] = hashlib.sha1(Path(wordllama_files()[0]).read_bytes()).hexdigest()
    cfg.update(
        name="category",
        num_classes=len(tax),
        labels=tax.names(),
        taxonomy_version=tax.version,
        feature_version=2,
        architecture="hashed-ngram and WordLlama-piece EmbeddingBags(mean) + linear, plus keyword prior",
        # the prior's keyword lists; `url` lists only with --prior-url-weight > 0 (the filter passes each
        # row's URL)
        keyword_prior={
            "beta": 1.0,  # placeholder until chosen below
            "cap": 3,
            "max_chars": args.prior_chars,
            "url_weight": args.prior_url_weight,
            "keywords": {
                leaf: {k: v for k, v in langs.items() if k != "url" or args.prior_url_weight > 0}
                for leaf, langs in keywords.items()
            },
        },
        temperature=1.0,
    )
    print(
        f"training on {len(texts)} documents ({len(seed_docs)} taxonomy pseudo-documents), {len(hold)} held out"
    )
    from models.category.model import train_model

    model = train_model(texts, labels, cfg, sample_weights=weights, piece_init=piece_init)
    date = args.date or dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    out = Path(args.out)
    sha = write_weights(model, out)
    write_config(cfg, out, date, sha)

    # Choose beta on the dev rows and the temperature on the held-out split, with the float16 weights.
    pred = load(out, "cpu", tax)
    if args.eval_labels:
        ev_rows = eval_set(args.eval_labels, url_text, tax)
    dev = [r for r in ev_rows if r["split"] == "dev"]
    beta_table = None
    if args.keyword_prior != "auto":
        beta = float(args.keyword_prior)
    elif dev:
        beta, beta_table = choose_beta(pred, dev, tax)
    else:
        beta = DEFAULT_BETA if args.bootstrap else 0.0
    cfg["keyword_prior"]["beta"] = beta
    if beta == 0:
        cfg["keyword_prior"] = None
    # temperature: on the held-out weak labels, else (every dev page annotated) on the tune rows
    t_rows = hold if hold else dev
    h_texts = [model_text(r) for r in t_rows]
    h_logits = pred.network_logits(h_texts).astype(np.float64)
    if beta:
        h_logits = h_logits + beta * np.log1p(pred_keyword_scores(pred, h_texts, [r.get("url") for r in t_rows]))
    cfg["temperature"] = fit_temperature(h_logits, [r["category"] for r in t_rows])
    print(f"keyword prior beta {beta} ({'dev split' if beta_table else 'given/default'}), temperature {cfg['temperature']}")
    write_config(cfg, out, date, sha)
    refit = bool(args.labels and dev and not args.no_refit)
    if refit:  # beta and temperature are chosen: train once more on every dev site, tune sites included
        for r in dev:
            for i, c in enumerate(r["accepted"]):
                texts.append(model_text(r))
                labels.append(c)
                weights.append(args.label_weight * (1.0 if i == 0 else args.alt_weight))
        for r in refit_only:
            texts.append(model_text(r))
            labels.append(r["category"])
            weights.append(r["weight"])
        print(f"refit on {len(texts)} documents (tune rows added)")
        model = train_model(texts, labels, cfg, sample_weights=weights, piece_init=piece_init)
        sha = write_weights(model, out)
        write_config(cfg, out, date, sha)
        ev_rows = [r for r in ev_rows if r["split"] != "dev"]

    # Evaluate the model as written, exactly as the filter stage will load it.
    pred = load(out, "cpu", tax)
    metrics = {"holdout": evaluate(pred, hold, tax)}
    if ev_rows:
        ev_fn = evaluate_accepted_rows if args.labels else evaluate_rows
        metrics["eval"] = ev_fn(pred, ev_rows, tax)
        net_only = load(out, "cpu", tax)
        net_only.beta, net_only.labeler = 0.0, None
        metrics["eval_network_only"] = ev_fn(net_only, ev_rows, tax)
        if beta_table:
            metrics["beta_on_dev"] = beta_table
        if args.extra_labels:
            metrics["second_annotator"] = second_annotator(pred, [r for r in ev_rows if r["split"] == "test"],
                                                           args.extra_labels, tax)
    cfg_written = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg_written["metrics"] = metrics
    (out / "config.json").write_text(
        json.dumps(cfg_written, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    data = {
        "command": ["python -m jobs.train_category"] + (sys.argv[1:] if argv is None else list(argv)),
        "inputs": args.input,
        "labels_how": (
            "Silver labels from the weak labeler (`pipeline/category/weak_labels.py`, keywords in "
            "`conf/category_keywords.yaml`): a page is labeled only when its best leaf has enough "
            "distinct keyword/URL hits, density and margin over the runner-up; other pages are left out."
            if args.bootstrap
            else "Labels given by the user (`category` column)."
        )
        + (
            f" With `--labels`, {sum(1 for r in rows if not r.get('human'))} pages carry weak labels (pages "
            f"without an annotation). Annotator labels of `{args.labels}` (guideline `data/labels/GUIDELINE.md`) on the pages of "
            f"its dev sites train with weight {args.label_weight} (accepted alternatives with "
            f"{args.alt_weight} of it); the labelled pages of {args.tune_percent} % of the dev sites are "
            "held out to choose beta and the temperature"
            + ("; the model is then retrained on all dev sites (tune sites included)" if refit else "")
            + "; no page of a test site is trained on. Texts: stage 1 re-run on the WARC inputs."
            + extra_how(args)
            if args.labels
            else ""
        ),
        "n_labeled": len(rows),
        "n_train": len(train),
        "n_holdout": len(hold),
        "n_seed": len(seed_docs),
        "n_synthetic": len(synth),
        "synthetic_per_leaf": synthetic_per_leaf(args.synthetic) if args.synthetic else "",
        "synthetic": args.synthetic,
        "synthetic_weight": args.synthetic_weight,
        "n_classes": len({r["category"] for r in train}),
        "top_labels": [(tax.leaves[c].en, n) for c, n in Counter(r["category"] for r in rows).most_common(8)],
        "holdout_kind": "silver labels" if args.bootstrap else "given labels",
        "eval_files": [args.labels] if args.labels else args.eval_labels,
        "accepted": (
            "On the annotator labels a prediction counts as correct when it is the best leaf or an accepted "
            "alternative (top-1: first prediction; top-5: any of the first five; domain: the first prediction "
            "in the domain of an accepted leaf); `dev` rows are the tune sites (beta chosen there), `test` "
            "rows are the test sites, never trained on."
            if args.labels
            else ""
        ),
        "beta": beta,
        "beta_how": "best top-1 on the dev split of the hand-labeled set" if beta_table else "given or default",
        "temperature_how": (
            f"fitted by negative log-likelihood on the {len(dev)} tune rows of the annotator labels"
            if args.labels and not hold
            else None
        ),
    }
    (out / "MODEL_CARD.md").write_text(model_card(cfg_written, metrics, data), encoding="utf-8")
    res = {"model": cfg_written["version"], "out": str(out), "seconds": round(time.time() - t0, 1), **metrics}
    print(json.dumps(res, indent=2, ensure_ascii=False))
    return res


if __name__ == "__main__":
    main()
