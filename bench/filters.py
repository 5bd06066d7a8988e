"""False removals and junk caught by the clean and filter decisions, per rule and per language.

    python -m bench.filters [--split dev|test|all] [--json F] [--config conf.yaml] [--set key=value ...]
                            [--spark-run RUN_DIR] [--labels data/labels/labels.jsonl]

On the labelled pages of ``data/labels/labels.jsonl`` (texts from stage 1 re-run on
``../shared/data/warc``; :mod:`pipeline.filter.evalset`), it runs the ``clean`` and ``filter`` decisions
as plain Python with the resolved config (the same functions the Spark jobs call):

* clean: line dedup over the whole crawl (:func:`pipeline.clean.linededup.dedup_lines_reference`),
  the C4 line rules, every Gopher / C4 signal and the per-language bounds (``clean.rules`` +
  ``clean.lang_rules.<lang>``);
* filter: clutter-line removal and the quality score of the clean text
  (:func:`udfs.models.score_texts`, category off), the decision of :mod:`pipeline.filter.decisions`.

For each rule and model it prints, per language, the good pages (verdict ``keep``) it would remove on
its own and the junk pages (verdict ``remove``) it would catch, the first-reason attribution the
pipeline records, and the totals for clean, filter and clean + filter (minhash dedup is not run: only
non-duplicate reasons are measured). ``--spark-run`` compares the decisions with a Spark run of the
pipeline on the same crawl (``01_clean`` / ``03_filter`` with their ``_dropped/``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

LANGS = ("en", "zh")
LINE_DEDUP_EFFECT = "line_dedup_changed_decision"


def rate(n: int, d: int) -> float | None:
    return None if d == 0 else n / d


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------- decisions (plain Python)


def line_dedup_all(docs: dict[str, dict], clean_cfg) -> dict[str, str]:
    """Text after line dedup of every stage-1 document with text (the whole crawl is the count base)."""
    from pipeline.clean.linededup import dedup_lines_reference

    ld = clean_cfg.line_dedup
    rows = [(d, r.get("fetch_time"), r["text"]) for d, r in docs.items() if r.get("text") and not r.get("drop_reason")]
    if not ld.enabled:
        return {d: t for d, _, t in rows}
    out, _ = dedup_lines_reference(rows, ld.max_occurrences, ld.head_lines, ld.tail_lines)
    return out


def clean_decisions(recs: list[dict], ld_texts: dict[str, str], clean_cfg) -> dict[str, dict]:
    """Per labelled doc: clean text, signals, every violated rule, the first reason (as the job), and
    the reason the page would get without line dedup."""
    from pipeline.clean.heuristics import REASON_EMPTY, HeuristicParams, score_document, violations

    params = HeuristicParams.from_config(clean_cfg)
    out = {}
    for r in recs:
        lang = r.get("lang")
        bounds = clean_cfg.bounds_for(lang)
        res = {}
        for key, text in (("ld", ld_texts.get(r["id"], r["text"])), ("raw", r["text"])):
            t3, sig = score_document(text or "", lang, params)
            viol = [REASON_EMPTY] if not t3.strip() else violations(sig, bounds)
            res[key] = (t3, sig, viol)
        t3, sig, viol = res["ld"]
        out[r["id"]] = {
            "text": t3,
            "signals": sig,
            "violations": viol,
            "reason": viol[0] if viol else None,
            "reason_without_line_dedup": res["raw"][2][0] if res["raw"][2] else None,
            "line_dedup_touched": ld_texts.get(r["id"], r["text"]) != r["text"],
        }
    return out


def filter_scores(texts: list[str], langs: list[str | None], filter_cfg, device: str = "cpu",
                  signals: list[dict] | None = None, *, clean_cfg) -> list[dict]:
    """Clutter-clean text, removed lines, quality and keep score of each text (category off).
    ``signals``: the clean stage's signals of each text (the ``h_*`` columns the Spark job reads)."""
    import dataclasses

    from udfs.models import ScoreSpec, score_texts

    spec = dataclasses.replace(ScoreSpec.from_config(filter_cfg, clean_cfg), category_enabled=False)
    out = []
    for s in range(0, len(texts), 256):
        sig = None if signals is None else signals[s : s + 256]
        df = score_texts(texts[s : s + 256], langs[s : s + 256], spec, device, sig)
        for row in df.itertuples(index=False):
            q, k = float(row.quality_score), float(row.keep_score)
            out.append({"text_clean": row.text_clean, "lines_removed": int(row.clutter_lines_removed),
                        "quality": None if q != q else q, "keep_score": None if k != k else k})
    return out


def filter_decisions(recs: list[dict], clean: dict[str, dict], filter_cfg, scores: list[dict] | None = None,
                     clean_cfg=None) -> dict[str, dict]:
    """Per labelled doc: the filter stage's reason on its clean text (every doc scored, so each model's
    effect is measured even on pages clean dropped). ``scores``: precomputed :func:`filter_scores`;
    without them ``clean_cfg`` (``cfg.clean``) is required to score."""
    from pipeline.filter.clutter import CLUTTER_EMPTY
    from pipeline.filter.config import keep_threshold, lang_threshold
    from pipeline.filter.decisions import filter_reason
    from pipeline.filter.keepscore import KEEP_BELOW
    from pipeline.filter.quality import QUALITY_BELOW

    if scores is None:
        if clean_cfg is None:
            raise ValueError("filter_decisions: pass clean_cfg=cfg.clean (or precomputed scores=)")
        scores = filter_scores([clean[r["id"]]["text"] for r in recs], [r.get("lang") for r in recs], filter_cfg,
                               signals=[clean[r["id"]]["signals"] for r in recs], clean_cfg=clean_cfg)
    q = filter_cfg.quality
    out = {}
    for r, sc in zip(recs, scores):
        text = clean[r["id"]]["text"]
        lang = r.get("lang")
        kt = keep_threshold(filter_cfg.keep, lang)
        reason = filter_reason(text, sc["text_clean"], sc["quality"], lang, q.threshold, q.threshold_by_lang,
                               sc.get("keep_score"), kt)
        viol = []
        if not (sc["text_clean"] or "").strip():
            viol.append(CLUTTER_EMPTY)
        else:  # each model on its own (the reason records only the first)
            if sc["quality"] is not None and sc["quality"] < lang_threshold(q.threshold, q.threshold_by_lang, lang):
                viol.append(QUALITY_BELOW)
            if kt is not None and sc.get("keep_score") is not None and sc["keep_score"] < kt:
                viol.append(KEEP_BELOW)
        out[r["id"]] = {**sc, "reason": reason, "violations": viol}
    return out


# ---------------------------------------------------------------- tables


def summarize(recs: list[dict], clean: dict[str, dict], filt: dict[str, dict]) -> dict:
    """Per language: counts of keep/remove pages and, per rule and for the totals, how many of each
    the rule removes alone (``alone``) and as the first reason the pipeline records (``first``)."""
    out: dict = {}
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        by_lang[r.get("lang") or "?"].append(r)
    for lang in sorted(by_lang, key=lambda x: (x not in LANGS, x)):
        rs = by_lang[lang]
        n = Counter(r["verdict"] for r in rs)
        rules: dict[str, Counter] = defaultdict(Counter)
        totals: dict[str, Counter] = defaultdict(Counter)
        examples: dict[str, list[str]] = defaultdict(list)
        touched: Counter = Counter()
        for r in rs:
            v = r["verdict"]
            c, f = clean[r["id"]], filt[r["id"]]
            for rule in c["violations"]:
                rules[rule][f"alone_{v}"] += 1
            for rule in f["violations"]:
                rules[rule][f"alone_{v}"] += 1
            first = c["reason"] or f["reason"]
            if first:
                rules[first][f"first_{v}"] += 1
                if v == "keep":
                    examples[first].append(r["url"])
            if c["reason"] != c["reason_without_line_dedup"]:
                rules[LINE_DEDUP_EFFECT][f"alone_{v}"] += 1
            totals["clean"][v] += bool(c["reason"])
            totals["filter"][v] += bool(f["reason"])
            totals["clean+filter"][v] += bool(c["reason"] or f["reason"])
            touched[v] += c["line_dedup_touched"]
        lk, lr = n["keep"], n["remove"]
        out[lang] = {
            "keep": lk,
            "remove": lr,
            "rules": {
                k: {
                    "good_removed_alone": c["alone_keep"], "junk_caught_alone": c["alone_remove"],
                    "good_removed_first": c["first_keep"], "junk_caught_first": c["first_remove"],
                    "good_removed_pct": rate(c["alone_keep"], lk), "junk_caught_pct": rate(c["alone_remove"], lr),
                }
                for k, c in sorted(rules.items())
            },
            "totals": {
                k: {"good_removed": c["keep"], "junk_caught": c["remove"],
                    "good_removed_pct": rate(c["keep"], lk), "junk_caught_pct": rate(c["remove"], lr)}
                for k, c in totals.items()
            },
            # pages that lost head/tail lines to line dedup (their decisions changed: see the rule
            # line_dedup_changed_decision)
            "line_dedup_touched": {"keep": touched["keep"], "remove": touched["remove"]},
            "good_removed_examples": {k: sorted(v)[:5] for k, v in sorted(examples.items())},
        }
    return out


def format_summary(summary: dict, title: str) -> str:
    lines = [f"## {title}"]
    for lang, s in summary.items():
        lines += ["", f"### {lang}: {s['keep']} keep pages, {s['remove']} remove pages", "",
                  "| rule / model | good removed (alone) | junk caught (alone) | first reason: good / junk |",
                  "|---|---|---|---|"]
        for rule, m in s["rules"].items():
            lines.append(
                f"| {rule} | {m['good_removed_alone']} ({pct(m['good_removed_pct'])}) | "
                f"{m['junk_caught_alone']} ({pct(m['junk_caught_pct'])}) | {m['good_removed_first']} / {m['junk_caught_first']} |"
            )
        for k, m in s["totals"].items():
            lines.append(f"| **{k}** | {m['good_removed']} ({pct(m['good_removed_pct'])}) | "
                         f"{m['junk_caught']} ({pct(m['junk_caught_pct'])}) | |")
        t = s["line_dedup_touched"]
        lines.append(f"\nLine dedup deleted lines from {t['keep']} keep and {t['remove']} remove pages.")
    return "\n".join(lines)


# ---------------------------------------------------------------- agreement with a Spark run


def spark_reasons(stage_dir: Path) -> dict[str, str | None]:
    """``{doc_id: drop_reason}`` of a stage output folder (kept rows None, ``_dropped/`` rows their reason)."""
    import pyarrow.dataset as ds

    out: dict[str, str | None] = {}
    for sub, dropped in ((stage_dir, False), (stage_dir / "_dropped", True)):
        if not sub.is_dir():
            continue
        d = ds.dataset(str(sub), format="parquet", exclude_invalid_files=True,
                       ignore_prefixes=["_", "."] if not dropped else ["."])
        cols = ["doc_id"] + (["drop_reason"] if dropped and "drop_reason" in d.schema.names else [])
        for row in d.to_table(columns=cols).to_pylist():
            out[row["doc_id"]] = row.get("drop_reason") if dropped else None
    return out


def compare(ours: dict[str, str | None], spark: dict[str, str | None]) -> dict:
    common = sorted(set(ours) & set(spark))
    diff = [(d, ours[d], spark[d]) for d in common if ours[d] != spark[d]]
    return {"compared": len(common), "agree": len(common) - len(diff), "differ": diff[:20], "n_differ": len(diff)}


def category_speed(texts: list[str], model: str, batch: int, min_seconds: float = 5.0,
                   urls: list[str | None] | None = None, titles: list[str | None] | None = None) -> dict:
    """Documents per CPU-second of the category predictor, one thread (featurization + network + keyword
    prior, with the pages' URLs and titles, as the filter stage calls it per batch), over passes of
    ``texts`` for at least ``min_seconds``."""
    import torch

    from models.category import load

    torch.set_num_threads(1)
    pred = load(None if model == "default" else model, "cpu")
    us = urls if urls is not None else [None] * len(texts)
    ts = titles if titles is not None else [None] * len(texts)
    pred.predict(texts[:batch], urls=us[:batch], titles=ts[:batch])  # warm-up: hash caches
    n, t0, w0 = 0, time.process_time(), time.perf_counter()
    while time.process_time() - t0 < min_seconds:
        for s in range(0, len(texts), batch):
            pred.predict(texts[s : s + batch], urls=us[s : s + batch], titles=ts[s : s + batch])
        n += len(texts)
    cpu = time.process_time() - t0
    return {"model": pred.version, "docs": n, "cpu_seconds": round(cpu, 2), "docs_per_cpu_second": round(n / cpu, 1),
            "wall_docs_per_second": round(n / (time.perf_counter() - w0), 1), "threads": 1,
            "mean_chars": round(sum(map(len, texts)) / max(1, len(texts)))}


def run_strata(run: Path, docs: dict[str, dict]) -> tuple[dict[str, str], dict[str, Counter]]:
    """Each document of a run's clean stage -> ``dropped`` (a non-duplicate clean or filter reason in
    that run) or ``kept``; and the stratum sizes per language."""
    c_sp = spark_reasons(run / "01_clean")
    f_sp = spark_reasons(run / "03_filter")
    strata = {d: "dropped" if (c_sp[d] or f_sp.get(d)) else "kept" for d in c_sp}
    sizes: dict[str, Counter] = defaultdict(Counter)
    for d, st in strata.items():
        sizes[(docs.get(d) or {}).get("lang") or "?"][st] += 1
    return strata, sizes


def crawl_estimate(recs: list[dict], clean: dict[str, dict], filt: dict[str, dict], strata: dict[str, str],
                   sizes: Counter) -> dict:
    """Crawl-level rates from a stratified sample: the labelled pages over-represent the pages the
    sampling run dropped, so each stratum's pages count ``N_stratum / n_labelled_stratum`` times
    (ratio estimator); pages not in the run are left out."""
    n: Counter = Counter()
    for r in recs:
        if r["id"] in strata:
            n[strata[r["id"]]] += 1
    num = {"keep": 0.0, "remove": 0.0}
    den = {"keep": 0.0, "remove": 0.0}
    for r in recs:
        st = strata.get(r["id"])
        if st is None:
            continue
        w = sizes[st] / n[st]
        den[r["verdict"]] += w
        num[r["verdict"]] += w * bool(clean[r["id"]]["reason"] or filt[r["id"]]["reason"])
    return {"labelled_by_stratum": dict(n), "good_removed_pct": rate(num["keep"], den["keep"]),
            "junk_caught_pct": rate(num["remove"], den["remove"])}


def check_spark_run(run: Path, docs: dict[str, dict], ld_texts: dict[str, str], cfg) -> dict:
    """Our clean decision on every document of the run's clean stage, and our filter decision on every
    document of its filter stage (on our clean text), compared with the run's."""
    c_sp = spark_reasons(run / "01_clean")
    all_recs = [{"id": d, "text": docs[d]["text"], "lang": docs[d].get("lang"), "verdict": "keep", "url": docs[d]["url"]}
                for d in sorted(c_sp) if d in docs and docs[d].get("text")]
    clean = clean_decisions(all_recs, ld_texts, cfg.clean)
    out = {"spark_clean": compare({d: c["reason"] for d, c in clean.items()}, c_sp)}
    f_sp = spark_reasons(run / "03_filter")
    f_recs = [r for r in all_recs if r["id"] in f_sp]
    filt = filter_decisions(f_recs, clean, cfg.filter, clean_cfg=cfg.clean)
    out["spark_filter"] = compare({d: f["reason"] for d, f in filt.items()}, f_sp)
    return out


def calibrate_langs(recs: list[dict], clean: dict[str, dict], filt: dict[str, dict], cfg, target: float,
                    junk_cost: float = 4.0, floors: Counter | None = None, tighten_keep: float = 0.995) -> dict:
    """Per language: the calibrated rule table of :func:`pipeline.filter.calibrate.calibrate`, printed
    as the ``clean.lang_rules.<lang>`` and ``filter.quality.threshold_by_lang`` YAML it implies."""
    from pipeline.clean.heuristics import REASON_EMPTY, RULES
    from pipeline.filter.calibrate import QUALITY_RULE, calibrate, rule_table
    from pipeline.filter.clutter import CLUTTER_EMPTY
    from pipeline.filter.config import lang_threshold

    out = {}
    q = cfg.filter.quality
    for lang in LANGS:
        rs = [r for r in recs if r.get("lang") == lang]
        if not rs:
            continue
        pages = []
        for r in rs:
            c, f = clean[r["id"]], filt[r["id"]]
            forced = REASON_EMPTY in c["violations"] or CLUTTER_EMPTY in f["violations"]
            pages.append({"verdict": r["verdict"], "signals": {**c["signals"], "quality": f["quality"]}, "forced": forced})
        table = rule_table(cfg.clean.bounds_for(lang), lambda rule: RULES[rule].signal,
                           lang_threshold(q.threshold, q.threshold_by_lang, lang))
        floor = None if floors is None else floors[lang]
        print(f"\n### calibration, {lang} (dev: {len(pages)} pages; junk floor {floor})")
        new = calibrate(pages, table, target, junk_cost=junk_cost, tighten_keep=tighten_keep, junk_floor=floor,
                        log=lambda m: print("  " + m))
        changed = {rule: [b.min, b.max] for rule, (_, b) in new.items() if (rule not in table or table[rule][1] != b)}
        out[lang] = {"changed": changed, "table": {rule: [b.min, b.max] for rule, (_, b) in new.items()}}
        print(f"  clean.lang_rules.{lang}:")
        for rule, (lo, hi) in changed.items():
            if rule != QUALITY_RULE:
                print(f"    {rule}: {{min: {lo}, max: {hi}}}")
        if QUALITY_RULE in changed:
            print(f"  filter.quality.threshold_by_lang.{lang}: {changed[QUALITY_RULE][0]}")
    return out


def short_line_lengths(recs: list[dict], clean: dict[str, dict], ref_chars: int, ref_lang: str = "en") -> dict:
    """Per language other than ``ref_lang``: the short-line length (characters) equivalent to ``ref_chars``
    characters of ``ref_lang``, measured on the dev good pages' clean texts two ways
    (:mod:`pipeline.filter.calibrate`): as many words (median characters per word, the words the Gopher
    rules count: jieba tokens for Chinese) and the same page-weighted share of short lines. Printed as
    ``clean.fineweb.short_line_chars_by_lang`` candidates."""
    from pipeline.filter.calibrate import (
        chars_per_word,
        line_lengths,
        share_matched_chars,
        word_equivalent_chars,
    )

    good: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        if r["split"] == "dev" and r["verdict"] == "keep" and r.get("lang"):
            good[r["lang"]].append(clean[r["id"]])

    def cpw(cs):
        return [v for c in cs if (v := chars_per_word(c["text"], int(c["signals"].get("n_words") or 0)))]

    def lengths(cs):
        return [line_lengths(c["text"]) for c in cs]

    out = {}
    ref = good.get(ref_lang, [])
    print(f"\n### short-line length equivalent to {ref_chars} {ref_lang} characters (dev good pages)")
    for lang in sorted(good):
        if lang == ref_lang or lang not in LANGS:
            continue
        cs = good[lang]
        words = word_equivalent_chars(cpw(ref), cpw(cs), ref_chars)
        n, q, qn = share_matched_chars(lengths(ref), lengths(cs), ref_chars)
        out[lang] = {"pages": len(cs), "word_equivalent": round(words, 2), "share_matched": n,
                     "ref_share": round(q, 4), "share_at_matched": round(qn, 4)}
        print(f"  {lang} ({len(cs)} pages): as many words: {words:.1f} characters; same share of short lines "
              f"({100 * q:.1f} %): {n} characters ({100 * qn:.1f} %)")
    return out


def keep_features(recs: list[dict], clean: dict[str, dict], filt: dict[str, dict]):
    """The keep score's feature matrix of ``recs`` (as the filter stage computes it)."""
    import numpy as np

    from pipeline.filter import keepscore

    return np.vstack([keepscore.feature_vector(clean[r["id"]]["signals"], filt[r["id"]]["text_clean"],
                                               filt[r["id"]]["quality"], filt[r["id"]]["lines_removed"],
                                               keepscore.nonempty_lines(clean[r["id"]]["text"])) for r in recs])


def train_keep(recs: list[dict], clean: dict[str, dict], filt: dict[str, dict], out_dir: str, langs: list[str],
               target: float, l2_grid: list[float], junk_weight: float, command: str) -> dict:
    """Train the keep score on the dev pages of ``langs`` (:func:`pipeline.filter.keepscore.train`), write
    the artifact to ``out_dir`` and report its threshold and the test-split figures (other rules as
    configured, the keep score's own decision replaced by the new model's)."""
    import datetime

    import numpy as np

    from pipeline.filter import keepscore

    def base_removed(rs):
        return np.array([bool(clean[r["id"]]["reason"] or (filt[r["id"]]["reason"] not in (None, keepscore.KEEP_BELOW)))
                         for r in rs])

    dev = [r for r in recs if r["split"] == "dev" and r.get("lang") in langs]
    test = [r for r in recs if r["split"] == "test" and r.get("lang") in langs]
    y_dev = np.array([r["verdict"] == "keep" for r in dev], dtype=float)
    model, thr, report = keepscore.train(keep_features(dev, clean, filt), y_dev, [r["site"] for r in dev],
                                         base_removed(dev), target, l2_grid, junk_weight)
    y_test = np.array([r["verdict"] == "keep" for r in test], dtype=float)
    s_test = model.score(keep_features(test, clean, filt))
    report["test"] = keepscore.removal_counts(s_test, thr, base_removed(test), y_test)
    report["test_base"] = keepscore.removal_counts(np.ones(len(test)), 0.0, base_removed(test), y_test)
    report["test_auc"] = keepscore.auc(s_test, y_test)
    report["dev_in_sample_auc"] = keepscore.auc(model.score(keep_features(dev, clean, filt)), y_dev)
    meta = {"command": command, "langs": langs, "metrics": report,
            "data": {"dev_pages": len(dev), "dev_keep": int(y_dev.sum()), "dev_remove": int(len(dev) - y_dev.sum()),
                     "test_pages": len(test)}}
    version = keepscore.save(model, out_dir, meta, datetime.datetime.now(datetime.UTC).strftime("%Y%m%d"))
    report["version"] = version
    print(f"\nkeep score {version} -> {out_dir}: l2 {report['l2']}, threshold {thr}")
    for k in ("dev_base", "dev_out_of_fold", "test_base", "test"):
        c = report[k]
        print(f"  {k}: good removed {c['good_removed']}/{c['good']}, junk caught {c['junk_caught']}/{c['junk']}")
    print(f"  set: filter.keep.model: {out_dir}; filter.keep.threshold_by_lang: "
          + "{" + ", ".join(f"{lg}: {thr}" for lg in langs) + "}")
    return report


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.filters", description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("dev", "test", "all"), default="test")
    p.add_argument("--labels", default=None, help="label file (default data/labels/labels.jsonl)")
    p.add_argument("--shared", default=None, help="shared data folder (default ../shared/data)")
    p.add_argument("--config", default=None, help="pipeline YAML over conf/defaults")
    p.add_argument("--set", action="append", default=[], help="config override key=value")
    p.add_argument("--spark-run", default=None,
                   help="a pipeline run on the same crawl (01_clean, 03_filter with _dropped/, run with the "
                        "configuration the labelled pages were sampled under): its decisions are the sampling "
                        "strata of the crawl-level estimates")
    p.add_argument("--check-spark", action="store_true",
                   help="also recompute every decision of --spark-run's clean and filter stages and compare")
    p.add_argument("--json", default=None, help="write all figures here")
    p.add_argument("--calibrate", type=float, default=None, metavar="TARGET",
                   help="choose per-language bounds on the dev split so that at most TARGET (e.g. 0.02) of its "
                        "good pages are removed (pipeline.filter.calibrate); prints them as conf YAML")
    p.add_argument("--category-speed", nargs="?", const="default", default=None, metavar="MODEL",
                   help="also measure the category predictor (default artifact, or MODEL) on the labelled texts: "
                        "documents per CPU-second on one thread, batches of filter.category.batch_docs_cpu")
    p.add_argument("--junk-floor-from", default=None, metavar="BENCH_JSON",
                   help="calibration: catch at least the dev junk pages counted in this earlier --json output "
                        "(e.g. of --config with the constants in use)")
    p.add_argument("--junk-floor", action="append", default=[], metavar="LANG=N",
                   help="calibration: catch at least N dev junk pages of LANG (repeatable; overrides --junk-floor-from)")
    p.add_argument("--tighten-keep", type=float, default=0.995,
                   help="calibration: a tightened bound must pass this fraction of the dev good pages alone")
    p.add_argument("--junk-cost", type=float, default=4.0,
                   help="calibration: good pages a loosening must rescue per junk page it lets through")
    p.add_argument("--short-line-chars", action="store_true",
                   help="print each language's short-line length (characters) equivalent to FineWeb's "
                        "clean.fineweb.short_line_chars English characters, on the dev good pages (clean only)")
    p.add_argument("--train-keep", default=None, metavar="DIR",
                   help="train the keep score on the dev pages (pipeline.filter.keepscore.train) and write its "
                        "artifact to DIR; prints the threshold for filter.keep.threshold_by_lang and test figures")
    p.add_argument("--keep-langs", default="en", help="--train-keep: languages trained on (comma-separated)")
    p.add_argument("--keep-target", type=float, default=0.02,
                   help="--train-keep: largest fraction of dev good pages removed by the rules + keep score")
    p.add_argument("--keep-l2", default="30,100,300", help="--train-keep: L2 strengths tried (best CV ROC-AUC wins)")
    p.add_argument("--keep-junk-weight", type=float, default=3.0, help="--train-keep: loss weight of a junk page")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from pipeline.config import load_config
    from pipeline.filter import evalset

    warcs, why = evalset.shared_warcs(args.shared)
    if warcs is None:
        print(f"bench.filters: skipped: {why}")
        return {"skipped": why}
    cfg = load_config(args.config, args.set)
    t0 = time.time()
    labels = evalset.read_labels(args.labels or evalset.LABELS_PATH)
    docs = evalset.stage1_documents(warcs)
    recs, missing = evalset.join_texts(labels, docs)
    if missing:
        print(f"bench.filters: {len(missing)} labelled pages have no stage-1 text (e.g. {missing[:3]})", file=sys.stderr)
    if args.calibrate is not None:
        args.split = "dev"
    ld_texts = line_dedup_all(docs, cfg.clean)
    clean = clean_decisions(recs, ld_texts, cfg.clean)
    if args.short_line_chars:  # unit calibration: clean texts and signals only
        return {"short_line_chars": short_line_lengths(recs, clean, cfg.clean.fineweb.short_line_chars)}
    filt = filter_decisions(recs, clean, cfg.filter, clean_cfg=cfg.clean)
    by_split = {sp: summarize([r for r in recs if sp == "all" or r["split"] == sp], clean, filt)
                for sp in ("dev", "test", "all")}
    summary = by_split[args.split]
    recs = [r for r in recs if args.split == "all" or r["split"] == args.split]
    print(format_summary(summary, f"bench.filters, {args.split} split ({len(recs)} labelled pages)"))
    res: dict = {"split": args.split, "n": len(recs), "missing_text": len(missing), "summary": summary,
                 "by_split": by_split,
                 "config": {"clean_lang_rules": {k: {r: [b.min, b.max] for r, b in v.items()}
                                                 for k, v in cfg.clean.lang_rules.items()},
                            "quality_threshold": cfg.filter.quality.threshold,
                            "quality_threshold_by_lang": cfg.filter.quality.threshold_by_lang,
                            "clutter_threshold_by_lang": cfg.filter.clutter.threshold_by_lang}}
    if args.spark_run:
        run = Path(args.spark_run)
        strata, sizes = run_strata(run, docs)
        res["crawl_estimate"] = {}
        for lang in LANGS:
            est = crawl_estimate([r for r in recs if r.get("lang") == lang], clean, filt, strata, sizes.get(lang, {}))
            res["crawl_estimate"][lang] = est
            print(f"\n{lang}: crawl-level estimate (strata of {run.name}: {sizes.get(lang)}): good removed "
                  f"{pct(est['good_removed_pct'])}, junk caught {pct(est['junk_caught_pct'])}")
        if args.check_spark:
            res.update(check_spark_run(run, docs, ld_texts, cfg))
            for k in ("spark_clean", "spark_filter"):
                c = res[k]
                print(f"\n{k}: {c['agree']}/{c['compared']} decisions agree" + (f"; differ: {c['differ'][:5]}" if c["differ"] else ""))
    if args.category_speed:
        res["category_speed"] = category_speed([r["text"] for r in recs], args.category_speed,
                                               cfg.filter.category.batch_docs_cpu, urls=[r.get("url") for r in recs],
                                               titles=[r.get("title") for r in recs])
        print(f"\ncategory predictor: {res['category_speed']}")
    if args.calibrate is not None:
        floors = None
        if args.junk_floor_from:  # catch at least the dev junk an earlier configuration caught
            before = json.loads(Path(args.junk_floor_from).read_text(encoding="utf-8"))["by_split"]["dev"]
            floors = Counter({lang: s["totals"]["clean+filter"]["junk_caught"] for lang, s in before.items()})
        for item in args.junk_floor:
            lang, _, n = item.partition("=")
            if not n.isdigit():
                raise SystemExit(f"--junk-floor {item!r}: give LANG=N, e.g. en=68")
            floors = floors or Counter()
            floors[lang] = int(n)
        res["calibrated"] = calibrate_langs(recs, clean, filt, cfg, args.calibrate, args.junk_cost, floors,
                                            args.tighten_keep)
    if args.train_keep:
        all_recs, _ = evalset.join_texts(labels, docs)
        res["keep_training"] = train_keep(all_recs, clean, filt, args.train_keep, args.keep_langs.split(","),
                                          args.keep_target, [float(v) for v in args.keep_l2.split(",")],
                                          args.keep_junk_weight, "python -m bench.filters " + " ".join(argv or sys.argv[1:]))
    res["seconds"] = round(time.time() - t0, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
