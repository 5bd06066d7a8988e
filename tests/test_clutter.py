"""Clutter model: features, gold labeling, cleaning decision, retraining, default artifact."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pipeline.filter.clutter import (
    CLUTTER_EMPTY,
    N_LINE_FEATURES,
    clean_lines,
    featurize_doc,
    line_features,
    split_lines,
)
from pipeline.filter.features import Features
from pipeline.filter.goldlabels import (
    label_against_gold,
    label_against_snippets,
    parse_cleaneval,
    parse_dragnet,
    parse_l3s,
    snippet_scores,
)
from pipeline.filter.text import eval_tokens, lcs_length, prf, token_prf, token_prf_aligned

WORDS = ("the river city council voted on a new plan to repair old bridges after heavy rain damaged roads "
         "and homes while engineers said costs would rise next year because steel prices increased").split()
CLUTTER = ["Home | News | Sport | Contact", "Share on Facebook", "Tweet", "© 2024 Example Media. All rights reserved.",
           "Accept cookies", "Related articles", "Sign in | Register", "Advertisement", "Next page »"]


def sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def synthetic_docs(n: int, seed: int, marker_is_content: bool | None = None) -> list[dict]:
    """Documents: clutter lines around content paragraphs; ``marker`` lines (zzqx ...) labeled as told."""
    rng = random.Random(seed)
    out = []
    for d in range(n):
        lines, labels = [], []
        for c in rng.sample(CLUTTER, 3):
            lines.append(c)
            labels.append(0)
        for _ in range(rng.randint(3, 6)):
            lines.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 3))))
            labels.append(1)
        if marker_is_content is not None:
            pos = rng.randint(0, len(lines))
            lines.insert(pos, f"zzqx marker line {rng.randint(0, 9)}")
            labels.insert(pos, int(marker_is_content))
        for c in rng.sample(CLUTTER, 2):
            lines.append(c)
            labels.append(0)
        out.append({"doc_id": f"d{seed}-{d}", "lines": lines, "labels": labels})
    return out


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# ---------------------------------------------------------------- features


def test_split_and_clean_lines():
    text = "Home | About\n\n  \nA real paragraph of text.\nShare this\n"
    lines = split_lines(text)
    assert lines == ["Home | About", "A real paragraph of text.", "Share this"]
    cleaned, removed = clean_lines(lines, [0.1, 0.9, 0.4], 0.5)
    assert cleaned == "A real paragraph of text." and removed == 2
    assert clean_lines(lines, [0.1, 0.2, 0.3], 0.5) == ("", 3)
    assert CLUTTER_EMPTY == "clutter_empty_after_removal"
    with pytest.raises(ValueError, match="3 lines but 2 scores"):
        clean_lines(lines, [0.1, 0.2], 0.5)


def test_line_features_and_context_links():
    lines = ["Home | News | Contact", "This is a long sentence that ends properly.", "© 2024 All rights reserved"]
    f = line_features(lines)
    assert f.shape == (3, N_LINE_FEATURES)
    assert f[0, 1] == 1.0 and f[2, 2] == 1.0  # first / last flags
    assert f[1, 17] == 1.0 and f[0, 17] == 0.0  # ends with a sentence terminal
    assert f[2, 21] == 1.0  # copyright
    feats = featurize_doc(lines, 1024)
    assert feats.prev.tolist() == [-1, 0, 1] and feats.next.tolist() == [1, 2, -1]
    assert feats.ids.min() >= 0 and feats.ids.max() < 1024
    assert line_features([]).shape == (0, N_LINE_FEATURES)


def test_line_features_context_and_language_cues():
    lines = ["首页 | 新闻 | 体育", "责任编辑：张三",
             "国务院今天召开常务会议，部署进一步扩大内需的措施，专家认为这些措施将有助于稳定经济增长。",
             "分享到微信", "Share on Facebook", "Menu"]
    f = line_features(lines)
    assert f.shape == (6, N_LINE_FEATURES) and np.isfinite(f).all()
    credit, lexicon, in_span, is_para, short_run = 35, 34, 38, 41, 43
    assert f[1, credit] == 1.0 and f[2, credit] == 0.0  # "责任编辑：" is a credit line
    assert f[3, lexicon] > 0 and f[4, lexicon] > 0 and f[2, lexicon] == 0  # 分享 / share
    assert f[2, is_para] == 1.0 and f[2, in_span] == 1.0 and f[0, in_span] == 0.0
    assert f[4, short_run] == f[5, short_run] > 0  # the trailing run of short lines
    # A line's features depend on its own document only.
    assert np.array_equal(line_features(lines[:3]), line_features(lines[:3]))


def test_lcs_and_aligned_token_scores():
    def ref(a, b):
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
        return table[-1][-1]

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == ref(a, b)
    # The extractor missed "on the plan"; a menu line "the plan menu" is kept. Bag overlap credits the
    # menu's words against the missed gold words, aligned matching does not.
    gold = "council voted on the plan"
    pred = "the plan menu\ncouncil voted"
    assert token_prf(pred, gold) == (4, 5, 5) and token_prf_aligned(pred, gold) == (2, 5, 5)
    assert token_prf_aligned("plan the", "the plan") == (1, 2, 2)


def test_features_concat_and_slice_rebase_links():
    a = featurize_doc(["one two", "three four five"], 512)
    b = featurize_doc(["six", "seven eight", "nine"], 512)
    c = Features.concat([a, b])
    assert len(c) == 5
    assert c.prev.tolist() == [-1, 0, -1, 2, 3] and c.next.tolist() == [1, -1, 3, 4, -1]
    assert c.offsets[2] == len(a.ids)
    s = c.slice(2, 5)
    assert s.prev.tolist() == b.prev.tolist() and s.next.tolist() == b.next.tolist()
    assert np.array_equal(s.ids, b.ids) and np.array_equal(s.offsets, b.offsets)


# ---------------------------------------------------------------- gold labels and metrics


def test_parse_gold_formats():
    ce = "URL: http://x\n<h>Big   title\n<p>First para\nwrapped line.\n<l>* item one\n"
    assert parse_cleaneval(ce) == ["Big title", "First para wrapped line.", "* item one"]
    assert parse_dragnet("Body text.\n\nMore.\n!@#$%^&*() COMMENTS\nnice post") == ["Body text.", "More."]
    l3s = ('<html><body><span class="x-nc-sel0">Menu</span><span class="x-nc-sel2">Story text</span>'
           '<div class="x-nc-sel1">Title <b>bold</b></div></body></html>')
    assert parse_l3s(l3s) == ["Story text", "Title bold"]


def test_label_against_gold():
    gold = ["Council votes to repair the old bridges after the storm", "Costs", "Next steps for the city"]
    lines = [
        "Council votes to repair the old bridges after the storm",  # long, in gold -> 1
        "Subscribe to our newsletter for daily updates now",  # long, absent -> 0
        "Costs",  # short, equals a gold block -> 1
        "Home",  # short, absent -> 0
        "the city",  # short, inside gold but not a block -> unknown
        "...",  # no tokens -> unknown
    ]
    assert label_against_gold(lines, gold) == [1, 0, 1, 0, None, None]


def test_chinese_tokens_and_labels():
    assert eval_tokens("北京 news 2024年") == ["北", "京", "news", "2024", "年"]
    gold = ["国务院今天召开常务会议，部署进一步扩大内需的措施。"]
    assert label_against_gold(["国务院今天召开常务会议，部署进一步扩大内需的措施。", "返回首页 | 新闻中心 | 联系我们"], gold) == [1, 0]


def test_snippet_labels_and_scores():
    lines = ["Die GEMA dreht völlig am Zeiger! Das ist so.", "Impressum", "A sentence that mentions Impressum among many other words here."]
    assert label_against_snippets(lines, ["Die GEMA dreht völlig am Zeiger!"], ["Impressum"]) == [1, 0, None]
    assert snippet_scores("\n".join(lines[:1]), ["Die GEMA dreht"], ["Impressum"]) == (1, 1, 1, 1)


def test_token_prf():
    tp, n_pred, n_gold = token_prf("a b b c", "b b d")
    assert (tp, n_pred, n_gold) == (2, 4, 3)
    m = prf(tp, n_pred, n_gold)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- retraining


def _train(tmp_path, name, records, extra=()):
    from jobs import train_clutter

    data = tmp_path / f"{name}.jsonl"
    write_jsonl(data, records)
    out = tmp_path / name
    train_clutter.main(["--data", str(data), "--out", str(out), "--epochs", "5", "--lr", "0.01", "--n-buckets", "4096",
                        "--emb-dim", "8", "--hidden", "16", "--batch-lines", "48", *extra])
    return out


def test_retrain_on_tiny_file_changes_predictions(tmp_path):
    from models.clutter import load

    docs_a = synthetic_docs(60, seed=1, marker_is_content=True)
    docs_b = synthetic_docs(60, seed=1, marker_is_content=False)
    model_a = load(_train(tmp_path, "a", docs_a), "cpu")
    model_b = load(_train(tmp_path, "b", docs_b), "cpu")
    probe = synthetic_docs(10, seed=99, marker_is_content=True)
    lines = [r["lines"] for r in probe]
    sa, sb = model_a.score_docs(lines), model_b.score_docs(lines)
    marker = np.concatenate([[ln.startswith("zzqx") for ln in doc] for doc in lines])
    labels = np.concatenate([r["labels"] for r in probe]).astype(bool)
    fa, fb = np.concatenate(sa), np.concatenate(sb)
    # Both models learned clutter vs content on ordinary lines ...
    assert fa[~marker & labels].mean() > fa[~marker & ~labels].mean() + 0.3
    # ... and the marker lines follow the labels each model was trained on.
    assert fa[marker].mean() > fb[marker].mean() + 0.3
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["version"].startswith("clutter-") and cfg["version"] == model_a.version
    assert model_a.version != model_b.version
    assert (tmp_path / "a" / "MODEL_CARD.md").read_text().count(model_a.version) == 1


def test_bad_labeled_file_is_a_clear_error(tmp_path):
    from jobs import train_clutter

    data = tmp_path / "bad.jsonl"
    write_jsonl(data, [{"doc_id": "x", "lines": ["a", "b"], "labels": [1]}])
    with pytest.raises(ValueError, match="equal length"):
        train_clutter.main(["--data", str(data), "--out", str(tmp_path / "m")])


# ---------------------------------------------------------------- the committed artifact


def test_default_artifact_separates_clutter_from_content():
    from models.clutter import load

    p = load(None, "cpu")
    doc = [
        "Home | World | Business | Sport | Contact us",
        "The city council voted on Tuesday to spend 4 million dollars repairing the three bridges that were "
        "damaged in last month's flood, after engineers warned that one of them could close within a year.",
        "Residents who spoke at the meeting said the closures had doubled their commute to the hospital.",
        "Share on Facebook | Share on Twitter | Email",
        "© 2024 Daily Example. All rights reserved.",
    ]
    s = p.score_docs([doc])[0]
    assert s.shape == (5,) and ((s >= 0) & (s <= 1)).all()
    assert min(s[1], s[2]) > max(s[0], s[3], s[4])


@pytest.mark.shared_data
def test_gold_page_builds_labeled_lines():
    from pipeline.filter.goldlabels import build_page, iter_gold_pages
    from tests.conftest import shared_data

    root = shared_data("html-cleaning-dataset-merged/cleaneval-dev")
    pages = [p for p in iter_gold_pages(root.parent.parent) if p.source == "cleaneval-dev"][:3]
    recs = [build_page(p) for p in pages]
    recs = [r for r in recs if r]
    assert recs and all(len(r["lines"]) == len(r["labels"]) for r in recs)
    labels = [x for r in recs for x in r["labels"]]
    assert labels.count(1) > 0
    assert all(r["split"] in ("train", "test") for r in recs)


# ---------------------------------------------------------------- Chinese hand labels and the threshold rule


def test_committed_hand_labels_hold_hashes_only():
    """data/clutter_zh_labels.jsonl: labels keyed by page + SHA-1, no page text (copyright)."""
    import re
    from pathlib import Path

    from pipeline.filter.goldlabels import read_hand_labels

    recs = read_hand_labels(Path(__file__).resolve().parent.parent / "data" / "clutter_zh_labels.jsonl")
    assert len(recs) == 62 and len({r["page"] for r in recs}) == 62
    sha = re.compile(r"^[0-9a-f]{40}$")
    for r in recs:
        assert set(r) == {"page", "site", "split", "lines", "missed"}
        assert all(set(d) == {"sha1", "label"} and sha.match(d["sha1"]) and d["label"] in (0, 1)
                   for d in r["lines"])
        assert all(set(d) == {"sha1", "n_tokens"} and sha.match(d["sha1"]) for d in r["missed"])
    # Sites never straddle the split; both sides hold clutter to learn from / measure.
    sides = {}
    for r in recs:
        sides.setdefault(r["site"], set()).add(r["split"])
    assert all(len(v) == 1 for v in sides.values())
    for split in ("train", "test"):
        assert sum(d["label"] == 0 for r in recs if r["split"] == split for d in r["lines"]) > 100


def test_label_by_hand_keys_lines_by_hash():
    from pipeline.filter.goldlabels import label_by_hand, line_key

    lines = ["头条新闻 | 体育", "国务院今天召开常务会议。", "本段未标注"]
    rec = {"page": "x", "split": "test", "missed": [],
           "lines": [{"sha1": line_key(lines[0]), "label": 0}, {"sha1": line_key("国务院今天召开常务会议。  "), "label": 1}]}
    labels, gold, info = label_by_hand(b"", lines, rec)
    assert labels == [0, 1, None] and gold == "国务院今天召开常务会议。"
    assert info == {"unlabeled_lines": 1, "missed_not_found": 0}
    assert line_key("a  b\t c") == line_key("a b c")


def test_threshold_rule_caps_the_recall_loss():
    from jobs.train_clutter import labeled_prf, pick_threshold

    content = "The council voted on Tuesday to repair the three bridges damaged in the flood."
    recs = [{"lines": ["Home | News", content, "Share this story", "Engineers said costs would rise."],
             "labels": [0, 1, 0, 1], "gold_text": content + "\nEngineers said costs would rise."}]
    # Scores: clutter lines lowest, the last content line between them and the first content line.
    scores = [np.array([0.02, 0.9, 0.04, 0.3])]
    t, m = pick_threshold(recs, scores, max_recall_loss=0.0005)
    assert 0.04 < t <= 0.3 and m["recall_loss"] == 0 and m["precision"] == 1.0
    t_loose, m_loose = pick_threshold(recs, scores, max_recall_loss=0.5)
    assert t_loose == t and m_loose["recall"] == m["recall"]  # no precision left to gain: the lower t stays
    assert labeled_prf(recs[0]["lines"], recs[0]["labels"], [True, True, False, False], recs[0]["gold_text"]) == (
        len(eval_tokens(content)), len(eval_tokens(content)) + 2, len(eval_tokens(recs[0]["gold_text"])))


@pytest.mark.shared_data
def test_hand_labels_match_this_extractor():
    """Every line the stage-1 extraction gives for a few hand-labeled pages has a label, and every missed
    content line is found again (else trafilatura changed: relabel, see MODEL_CARD.md)."""
    from pathlib import Path

    from pipeline.filter.goldlabels import build_page, iter_hand_labeled
    from tests.conftest import shared_data

    root = shared_data("gne-chinese-news-pages").parent
    labels = Path(__file__).resolve().parent.parent / "data" / "clutter_zh_labels.jsonl"
    pages = [p for p in iter_hand_labeled(root, labels) if p.page_id in ("163/1.html.gz", "sina/3.html.gz",
                                                                        "thepaper/2.html.gz")]
    assert len(pages) == 3
    for page in pages:
        rec = build_page(page)
        assert rec["unlabeled_lines"] == 0 and rec["missed_not_found"] == 0, page.page_id
        assert 0 in rec["labels"] and 1 in rec["labels"] and rec["hand_labeled"]
