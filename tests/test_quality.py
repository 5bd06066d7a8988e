"""Quality model: document features, corruptions, ROC-AUC, retraining, default artifact."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pipeline.filter.quality import (
    CORRUPTIONS,
    N_DOC_FEATURES,
    QUALITY_BELOW,
    corrupt,
    doc_features,
    featurize_docs,
)
from pipeline.filter.text import roc_auc
from tests.test_clutter import sentence

PARAGRAPH = (
    "The city council voted on Tuesday to spend four million dollars repairing the three bridges that were "
    "damaged in last month's flood. Engineers had warned that one of them could close within a year.\n"
    "Residents who spoke at the meeting said the closures had doubled their commute to the hospital, and "
    "several asked the council to publish a timetable for the work.\n"
    "The mayor said construction would begin in the spring and that the city would apply for state funds "
    "to cover part of the cost."
)


def test_doc_features_see_repetition():
    f_good = doc_features(PARAGRAPH)
    f_rep = doc_features(PARAGRAPH + ("\nBuy now cheap pills" * 20))
    assert f_good.shape == (N_DOC_FEATURES,)
    assert f_rep[7] > f_good[7]  # duplicate-line fraction
    assert f_rep[12] > f_good[12]  # duplicate 5-gram character fraction
    assert f_good[20] == 1.0 and doc_features("no ending here")[20] == 0.0
    assert featurize_docs([PARAGRAPH, ""], 1024).feats.shape == (2, N_DOC_FEATURES)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_change_text(kind):
    out = corrupt(PARAGRAPH, kind, random.Random(0), other="Home | About\nShare this")
    assert out != PARAGRAPH and out.strip()


def test_corruptions_work_on_chinese():
    zh = "国务院今天召开常务会议。会议部署了进一步扩大内需的措施。\n专家认为这些措施将有助于稳定经济增长。"
    assert corrupt(zh, "word_shuffle", random.Random(1)) != zh
    assert len(corrupt(zh, "repeat_ngram", random.Random(1))) > len(zh)


def test_unknown_corruption_is_an_error():
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(PARAGRAPH, "nope", random.Random(0))


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + y * 0.3, 1)  # rounding creates ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(y, s) == pytest.approx(pairwise)
    with pytest.raises(ValueError):
        roc_auc(np.ones(3), np.ones(3))


def _docs(n: int, seed: int, marker_good: bool) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = "\n".join(" ".join(sentence(rng) for _ in range(3)) for _ in range(3))
        marked = i % 2 == 0
        if marked:
            text = "zzqx " + text
        label = int(marker_good) if marked else int(not marker_good)
        out.append({"doc_id": f"q{seed}-{i}", "text": text, "label": label})
    return out


def test_retrain_on_tiny_file_changes_predictions(tmp_path):
    from jobs import train_quality
    from models.quality import load

    models = {}
    for name, marker_good in (("good", True), ("bad", False)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _docs(120, 3, marker_good)), encoding="utf-8")
        train_quality.main(["--data", str(data), "--out", str(tmp_path / name), "--folds", "2", "--epochs", "6",
                            "--lr", "0.01", "--n-buckets", "4096", "--emb-dim", "8", "--hidden", "16",
                            "--batch-docs", "16"])
        models[name] = load(tmp_path / name, "cpu")
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        assert len(cfg["metrics"]["cv"]["fold_auc"]) == 2 and cfg["metrics"]["test"]["auc"] > 0.9
        # sentence-shuffle augmentation (training folds only) and the coherence probe are recorded
        assert cfg["data"]["augmented_shuffles"] > 0 and cfg["coherence_features"] > 0
        assert len(cfg["metrics"]["cv"]["fold_shuffle_probe_auc"]) == 2
        assert cfg["metrics"]["test"]["shuffle_probe"]["pairs"] > 0
    probe = [d["text"] for d in _docs(20, 77, True) if d["text"].startswith("zzqx")]
    good, bad = models["good"].predict(probe), models["bad"].predict(probe)
    assert good.mean() > 0.5 > bad.mean() and good.mean() - bad.mean() > 0.2


def test_default_artifact_prefers_fluent_text():
    from models.quality import load

    p = load(None, "cpu")
    rng = random.Random(5)
    shuffled = corrupt(PARAGRAPH, "word_shuffle", rng)
    repeated = corrupt(PARAGRAPH, "repeat_lines", rng)
    s = p.predict([PARAGRAPH, shuffled, repeated])
    assert s.shape == (3,) and ((s >= 0) & (s <= 1)).all()
    assert s[0] > s[1] and s[0] > s[2]
    assert p.predict([]).shape == (0,)
    assert QUALITY_BELOW == "quality_below_threshold"


def test_labeled_files_parquet_jsonl_gz_and_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.filter.labeled import read_records, write_jsonl

    rows = [{"doc_id": "a", "text": "hello world.", "label": 1}, {"doc_id": "b", "text": "buy buy buy", "label": 0}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    write_jsonl(tmp_path / "docs.jsonl.gz", rows)
    assert read_records(tmp_path / "docs.parquet") == rows
    assert read_records(tmp_path / "docs.jsonl.gz") == rows
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": 1}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        read_records(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="does not exist"):
        read_records(tmp_path / "missing.jsonl")


STORY = (
    "Maria opened a bakery on the corner of Elm Street in 1998. Her bakery quickly became known for its rye "
    "bread. The bread was baked every morning before dawn, and customers queued for it. However, the rent "
    "doubled in 2015. She moved the bakery to a cheaper street across the river. Most customers followed her "
    "there, and the new bakery still sells rye bread every morning."
)


def test_coherence_features_see_sentence_order():
    from models.quality.coherence import (
        N_COHERENCE_FEATURES,
        coherence_features,
        doc_coherence,
        split_sentences,
    )

    assert [len(p) for p in split_sentences("One. Two? Three!\nFour。五。")] == [3, 2]
    f = doc_coherence(STORY)
    assert f.shape == (N_COHERENCE_FEATURES,) and np.isfinite(f).all()
    # a shuffle that starts with "However" opens with a back-reference
    sents = [s for p in split_sentences(STORY) for s in p]
    g = doc_coherence(" ".join([sents[3], sents[0], sents[5], sents[2], sents[4], sents[1]]))
    assert f[4] == 0.0 and g[4] == 1.0
    # three topics of three sentences each: in order, adjacent sentences share words and distant ones
    # do not; interleaved, adjacent sentences are as unrelated as distant ones
    topics = [["river", "bridge", "flood"], ["violin", "concert", "orchestra"], ["wheat", "harvest", "farmer"]]
    sent = [[f"The {a} {b} story number {k} mentions {c} again." for k in range(3)] for a, b, c in topics]
    ordered = " ".join(s for t in sent for s in t)
    interleaved = " ".join(sent[t][k] for k in range(3) for t in range(3))
    fo, fi = doc_coherence(ordered), doc_coherence(interleaved)
    assert fo[2] > fi[2]  # adjacent minus distant overlap
    assert fo[9] > fi[9]  # share of sentences whose nearest neighbour is adjacent
    assert coherence_features([]).shape == (0, N_COHERENCE_FEATURES)
    assert coherence_features(["", "无标点的中文文本"]).shape == (2, N_COHERENCE_FEATURES)
    zh = "小明开了一家面包店。面包店每天早上卖面包。但是房租涨了。"
    assert doc_coherence(zh)[0] > 0 and doc_coherence("但是房租涨了。小明开了一家面包店。")[4] == 1.0


def test_coherence_features_follow_the_artifact_config(tmp_path):
    from models.quality import featurize, load

    p = load(None, "cpu")
    f = p.featurize([STORY])
    assert f.feats.shape[1] == p.config["n_features"]
    assert featurize([STORY], 1024, True).feats.shape[1] == featurize([STORY], 1024, False).feats.shape[1] + int(
        p.config.get("coherence_features", 0) or 11
    )
