"""Category model: retraining on a tiny labeled file, the default artifact's contract, the eval set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from jobs.train_category import main as train_main
from models.category import category_names, load
from pipeline.category.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--num-buckets", "4096", "--dim", "16", "--epochs", "25", "--batch-size", "8", "--lr", "0.05"]


def _labeled(path: Path, a: str, b: str) -> None:
    """Two invented topics: 'zorblat' texts are labeled ``a``, 'quindle' texts ``b`` (by name or id)."""
    tax = load_taxonomy()
    rows = []
    for i in range(24):
        rows.append(
            {"text": f"zorblat flux {i} zorblat meter reading {i % 5}", "category": a, "url": f"u://z/{i}"}
        )
        rows.append(
            {
                "text": f"quindle verse {i} quindle rhyme line {i % 3}",
                "category": tax.id_of(b),
                "url": f"u://q/{i}",
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def _predict_names(model_dir: Path, texts: list[str]) -> list[str]:
    pred = load(model_dir, "cpu")
    ids, probs = pred.predict(texts)
    assert ids.dtype == np.int64 and probs.dtype == np.float32
    return [category_names()[i] for i in ids]


def test_retrain_on_tiny_labeled_file_changes_predictions(tmp_path):
    probe = ["a zorblat meter", "quindle rhyme"]
    f1 = tmp_path / "a.jsonl"
    _labeled(f1, "Physics", "Poetry")
    res = train_main(["--input", str(f1), "--out", str(tmp_path / "m1"), "--holdout", "0.2", *SMALL])
    assert _predict_names(tmp_path / "m1", probe) == ["Physics", "Poetry"]
    assert res["holdout"]["n"] > 0 and res["holdout"]["top1"] == 1.0
    # swap the labels: the retrained model follows
    f2 = tmp_path / "b.jsonl"
    _labeled(f2, "Poetry", "Physics")
    train_main(["--input", str(f2), "--out", str(tmp_path / "m2"), "--holdout", "0.2", *SMALL])
    assert _predict_names(tmp_path / "m2", probe) == ["Poetry", "Physics"]
    # the folder is a complete model version
    for name in ("model.safetensors", "config.json", "MODEL_CARD.md"):
        assert (tmp_path / "m1" / name).exists()
    cfg = json.loads((tmp_path / "m1" / "config.json").read_text())
    assert re.fullmatch(r"category-\d{8}-[0-9a-f]{8}", cfg["version"])
    assert cfg["labels"] == category_names() and "holdout" in cfg["metrics"]
    assert "top-1" in (tmp_path / "m1" / "MODEL_CARD.md").read_text()


def test_retraining_is_deterministic(tmp_path):
    f = tmp_path / "a.jsonl"
    _labeled(f, "Physics", "Poetry")
    args = ["--input", str(f), "--holdout", "0.2", "--date", "20260101", *SMALL[:-4], "--epochs", "3"]
    v1 = train_main([*args, "--out", str(tmp_path / "m1")])["model"]
    v2 = train_main([*args, "--out", str(tmp_path / "m2")])["model"]
    assert v1 == v2  # the version hashes the weights
    assert (tmp_path / "m1" / "model.safetensors").read_bytes() == (
        tmp_path / "m2" / "model.safetensors"
    ).read_bytes()


def test_unknown_labels_fail_loudly(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"text": "x", "category": "Not A Leaf"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown `category`"):
        train_main(["--input", str(f), "--out", str(tmp_path / "m"), *SMALL])


def test_default_artifact_contract():
    pred = load(None, "cpu")
    assert pred.version.startswith("category-")
    texts = [
        "Preheat the oven. Mix flour, sugar and two eggs, then bake the cake for 30 minutes. Recipe for four.",
        "The striker scored twice as the club won the Champions League match; the coach praised the team.",
        "",
        "足球比赛中前锋进球，球队赢得联赛冠军。",
    ]
    ids, probs = pred.predict(texts)
    assert ids.shape == (4,) and probs.shape == (4,)
    assert ((ids >= 0) & (ids < 200)).all() and ((probs > 0) & (probs <= 1)).all()
    # batched = one by one (deterministic, independent of the batch)
    one = [pred.predict([t])[0][0] for t in texts]
    assert ids.tolist() == one
    top, _ = pred.predict_topk(texts, 5)
    names = category_names()
    assert "Recipes and Cooking" in [names[i] for i in top[0]]
    assert "Football (Soccer)" in [names[i] for i in top[1]]
    assert "Football (Soccer)" in [names[i] for i in top[3]]  # Chinese, through the keyword prior
    assert pred.beta > 0 and pred.keyword_scores(texts[3:]).sum() > 0


def test_default_artifact_reads_titles_and_urls():
    """The committed model reads the page title in front of the text and the URL words in its prior;
    missing titles/URLs (None lists or entries, `.test` hosts) read the text alone."""
    from pipeline.category.features import with_title

    pred = load(None, "cpu")
    assert pred.use_title and pred.labeler is not None and pred.labeler.url
    texts = ["Tickets for Saturday are on sale now at the box office.", "The results are in."]
    titles = ["Champions League final: tickets", None]
    lg_t = pred.logits(texts, titles=titles)
    assert np.allclose(lg_t, pred.logits([with_title(texts[0], titles[0]), texts[1]]))
    assert not np.allclose(lg_t[0], pred.logits(texts)[0])
    assert np.array_equal(pred.logits(texts, urls=[None, "http://a.html-cleaning.test/recipes/1"]), pred.logits(texts))
    football = category_names().index("Football (Soccer)")
    lg_url = pred.logits(texts[1:], urls=["https://example.com/sports/football/match-report"])[0]
    lg = pred.logits(texts[1:])[0]
    assert lg_url[football] > lg[football] + 0.5  # the prior's URL word
    assert 1 <= np.count_nonzero(lg_url != lg) <= 10  # only leaves whose URL lists hold one of its words
    with pytest.raises(ValueError, match="titles"):
        pred.predict(texts, titles=["one"])


def test_prior_without_a_recorded_url_weight_reads_the_text_only():
    """An artifact whose keyword prior records no ``url_weight`` adds nothing for URL words."""
    from models.category import CategoryPredictor

    pred = load(None, "cpu")
    kp = {k: v for k, v in pred.config["keyword_prior"].items() if k != "url_weight"}
    old = CategoryPredictor(pred.model, {**pred.config, "keyword_prior": kp}, "cpu")
    texts, urls = ["The results are in."], ["https://example.com/sports/football/match-report"]
    assert np.array_equal(old.keyword_scores(texts, urls=urls), old.keyword_scores(texts))
    assert not np.array_equal(pred.keyword_scores(texts, urls=urls), pred.keyword_scores(texts))


def test_written_examples_file_is_valid():
    """data/labels/synthetic_category.jsonl: leaf names of the taxonomy, 10 per leaf in en and in zh,
    known genres, no text twice."""
    from collections import Counter

    rows = [json.loads(line) for line in (REPO / "data/labels/synthetic_category.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    names = set(category_names())
    assert {r["leaf"] for r in rows} == names
    per = Counter((r["leaf"], r["lang"]) for r in rows)
    assert set(per.values()) == {10} and len(per) == 2 * len(names)
    assert {r["genre"] for r in rows} <= {"news", "forum", "howto", "blog", "review", "reference", "listing", "other"}
    texts = Counter(r["text"].strip() for r in rows)
    assert texts.most_common(1)[0][1] == 1


def test_model_size_and_card():
    d = REPO / "models" / "category"
    assert (d / "model.safetensors").stat().st_size < 20 * 2**20
    card = (d / "MODEL_CARD.md").read_text()
    assert "hand-labeled" in card and "held-out" in card


def test_eval_set_is_valid():
    tax = load_taxonomy()
    rows = [
        json.loads(line) for line in (REPO / "data" / "category_eval.jsonl").read_text(encoding="utf-8").splitlines() if line
    ]
    assert len(rows) >= 250
    assert len({r["url"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) <= {"url", "category", "lang", "split", "note"}, r
        assert r["split"] in ("dev", "test") and r["lang"], r
        tax.id_of(r["category"])
        assert len(r.get("note", "")) <= 120
    for split in ("dev", "test"):  # both splits hold English and Chinese pages
        langs = [r["lang"] for r in rows if r["split"] == split]
        assert langs.count("en") >= 50 and langs.count("zh") >= 15, (split, langs.count("zh"))


def _with_chinese_eval(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Tiny labeled file + 4 Chinese pages (excluded from training) + their eval labels + keywords."""
    f = tmp_path / "a.jsonl"
    _labeled(f, "Physics", "Poetry")
    zh = {
        "u://zh/0": ("量子物理实验中的粒子。", "Physics", "dev"),
        "u://zh/1": ("一首诗歌，诗人写的。", "Poetry", "dev"),
        "u://zh/2": ("粒子与量子的新发现。", "Physics", "test"),
        "u://zh/3": ("诗人朗诵诗歌。", "Poetry", "test"),
    }
    with f.open("a", encoding="utf-8") as out:
        for u, (t, c, _) in zh.items():
            out.write(json.dumps({"text": t, "category": c, "url": u}, ensure_ascii=False) + "\n")
    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        "\n".join(json.dumps({"url": u, "category": c, "lang": "zh", "split": s}) for u, (_, c, s) in zh.items()),
        encoding="utf-8",
    )
    kw = tmp_path / "kw.yaml"
    kw.write_text("Physics: {zh: [量子, 粒子]}\nPoetry: {zh: [诗歌, 诗人]}\n", encoding="utf-8")
    return f, ev, kw


def test_keyword_prior_chosen_on_dev_rows_carries_chinese(tmp_path):
    f, ev, kw = _with_chinese_eval(tmp_path)
    # hashed n-grams only: the pretrained pieces would carry these Chinese words without the prior
    common = ["--input", str(f), "--exclude-urls", str(ev), "--eval-labels", str(ev), "--keywords", str(kw),
              "--piece-dim", "0"]
    res = train_main([*common, "--out", str(tmp_path / "m"), "--holdout", "0.2", *SMALL])
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["keyword_prior"]["beta"] > 0  # chosen on the two dev rows
    assert res["eval"]["test"]["top1"] == 1.0  # the Chinese test rows, never trained on
    assert res["eval_network_only"]["test"]["n"] == 2
    assert 0 < cfg["temperature"] and "keyword prior" in (tmp_path / "m" / "MODEL_CARD.md").read_text().lower()
    assert _predict_names(tmp_path / "m", ["量子", "诗人"]) == ["Physics", "Poetry"]
    # --keyword-prior 0: network only, no prior in the artifact, and a different version
    res0 = train_main([*common, "--out", str(tmp_path / "m0"), "--holdout", "0.2", "--keyword-prior", "0", *SMALL])
    assert json.loads((tmp_path / "m0" / "config.json").read_text())["keyword_prior"] is None
    assert res0["model"] != res["model"]
    pred0 = load(tmp_path / "m0", "cpu")
    assert not pred0.keyword_scores(["量子"]).any()


def test_bad_keyword_prior_argument(tmp_path):
    with pytest.raises(SystemExit):
        train_main(["--input", "x.jsonl", "--out", str(tmp_path / "m"), "--keyword-prior", "-1"])
