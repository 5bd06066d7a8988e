"""Category model inputs: WordLlama pieces (packaged, no download), the extra gold-text labels and their
loader, the hashed-only architecture still training and loading."""

from __future__ import annotations

import gzip
import json
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jobs.train_category import main as train_main
from models.category import load
from pipeline.category import extra_labels as xl
from pipeline.category.features import PIECE_SLOTS, PieceEncoder, tokens, wordllama_files
from pipeline.category.taxonomy import load_taxonomy
from pipeline.filter.evalset import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_wordllama_files_load_without_network(no_network):
    from models.category.model import pretrained_pieces

    tok, emb = wordllama_files()
    assert "site-packages" in tok or "dist-packages" in tok or Path(tok).is_file()
    table = pretrained_pieces()
    assert table.shape == (32000, 256) and table.dtype == np.float32 and np.isfinite(table).all()
    enc = PieceEncoder()
    assert enc.vocab_size == 32000


def test_piece_encoder_pieces_and_cache():
    enc = PieceEncoder()
    toks = tokens("The physicist studied quantum entanglement in 2024. 中华")
    ids = enc.piece_ids(toks)
    pieces = [enc.tokenizer.id_to_token(int(i)) for i in ids]
    assert pieces[:2] == ["\u2581the", "\u2581phys"]  # lower-cased words, split into pieces
    assert "\u2581" not in pieces and "2024" not in "".join(pieces)  # bare word start and digits dropped
    assert pieces[-2:] == ["中", "华"]
    assert ids.dtype == np.int64 and (ids >= 0).all() and (ids < 32000).all()
    # cached and fresh encodings agree; a long word keeps at most PIECE_SLOTS pieces
    fresh = PieceEncoder()
    assert fresh.piece_ids(toks).tolist() == ids.tolist() == enc.piece_ids(toks).tolist()
    long = "pneumonoultramicroscopicsilicovolcanoconiosis"
    assert 1 <= len(enc.piece_ids([long])) <= PIECE_SLOTS
    assert enc.piece_ids([]).shape == (0,)


def _labeled(path: Path) -> None:
    rows = []
    for i in range(16):
        rows.append({"text": f"the striker scored a goal in the football match {i}", "category": "Football (Soccer)"})
        rows.append({"text": f"bake the cake with flour butter and sugar recipe {i}", "category": "Recipes and Cooking"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def test_piece_model_learns_and_hashed_only_model_still_trains(tmp_path):
    f = tmp_path / "a.jsonl"
    _labeled(f)
    common = ["--input", str(f), "--holdout", "0", "--keyword-prior", "0", "--epochs", "4", "--batch-size", "8"]
    train_main([*common, "--out", str(tmp_path / "p"), "--lr", "0.05"])
    pred = load(tmp_path / "p")
    cfg = pred.config
    assert cfg["piece_dim"] == 256 and cfg["dim"] == 0 and len(cfg["piece_tokenizer_sha1"]) == 40
    names = load_taxonomy().names()
    # words never seen in training reach the right leaf through the pretrained pieces
    ids, _ = pred.predict(["a soccer player kicks the ball into the net", "a delicious dessert baked in the oven"])
    assert [names[i] for i in ids] == ["Football (Soccer)", "Recipes and Cooking"]
    # the fastText architecture of earlier artifacts (no pieces) still trains and loads
    train_main([*common, "--out", str(tmp_path / "h"), "--piece-dim", "0", "--dim", "16", "--num-buckets",
                "4096", "--sparse", "0", "--lr", "0.05"])
    h = load(tmp_path / "h")
    assert h.config["piece_dim"] == 0 and h.model.pre is None
    assert [names[i] for i in h.predict(["the striker scored a goal"])[0]] == ["Football (Soccer)"]


def test_model_refuses_another_tokenizer(tmp_path):
    f = tmp_path / "a.jsonl"
    _labeled(f)
    train_main(["--input", str(f), "--holdout", "0", "--keyword-prior", "0", "--epochs", "1", "--out", str(tmp_path / "p")])
    cfg_path = tmp_path / "p" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["piece_tokenizer_sha1"] = "0" * 40
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="wordllama==0.4.0.post1"):
        load(tmp_path / "p")


# --- extra labels -------------------------------------------------------------------------------


def _fake_root(root: Path) -> None:
    ds = root / xl.HTML_CLEANING / "dragnet_data"
    (ds / "GoldStandard").mkdir(parents=True)
    (ds / "input").mkdir()
    with gzip.open(ds / "GoldStandard" / "R1.txt.gz", "wt", encoding="utf-8") as g:
        g.write("URL: http://x\n<p>The striker scored.\n\n\n<p>The club won the league.\n")
    (ds / "GoldStandard" / "R2.txt").write_text(
        '<html><span class="x-nc-sel0">menu</span><span class="x-nc-sel2">Bake the cake &amp; serve.</span></html>',
        encoding="utf-8",
    )
    (root / "warc").mkdir()
    (root / "warc" / "index.json").write_text(json.dumps([
        {"warc": "w", "url": "http://dragnet_data.html-cleaning.test/R1", "source": f"{xl.HTML_CLEANING}/dragnet_data/input/R1.html.gz"},
        {"warc": "w", "url": "http://dragnet_data.html-cleaning.test/R2", "source": f"{xl.HTML_CLEANING}/dragnet_data/input/R2.html.gz"},
    ]))


def test_extra_labels_build_and_load_round_trip(tmp_path):
    root = tmp_path / "shared"
    _fake_root(root)
    assert xl.gold_text(f"{xl.HTML_CLEANING}/dragnet_data/GoldStandard/R1.txt.gz", root) == (
        "The striker scored.\nThe club won the league."
    )
    assert xl.gold_text(f"{xl.HTML_CLEANING}/dragnet_data/GoldStandard/R2.txt", root) == "Bake the cake & serve."
    batches = tmp_path / "batch-00.jsonl"
    batches.write_text("\n".join(json.dumps(b) for b in [
        {"id": "a1", "source": "html-cleaning/dragnet_data/R1.txt.gz", "lang": "en"},
        {"id": "b2", "source": "html-cleaning/dragnet_data/R2.txt", "lang": "en"},
        {"id": "c3", "source": "html-cleaning/dragnet_data/R9.txt", "lang": "en"},
    ]) + "\n")
    labels = tmp_path / "out-00.jsonl"
    labels.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a1", "category": "Football (Soccer)", "category_alts": ["Basketball"]},
        {"id": "b2", "category": "Recipes and Cooking", "category_alts": []},
        {"id": "c3", "category": "Recipes and Cooking", "category_alts": []},
        {"id": "zz", "category": "Recipes and Cooking", "category_alts": []},
        {"id": "a1", "category": "Not A Leaf", "category_alts": []},
    ]) + "\n")
    recs, dropped = xl.build_extra([batches], [labels], load_taxonomy(), root)
    assert dropped == Counter({"no_batch_row": 1, "not_in_crawl": 1, "unknown_category": 1})
    assert [r["id"] for r in recs] == ["a1", "b2"]
    assert recs[0]["site"] == recs[0]["url"] == "http://dragnet_data.html-cleaning.test/R1"  # mirror page = site
    out = tmp_path / "extra.jsonl"
    xl.write_extra(recs, out)
    assert "striker" not in out.read_text()  # no page text in the data file
    splits = {r["split"] for r in recs}
    rows, dropped = xl.load_extra(out, root, splits=splits)
    assert [r["text"] for r in rows] == ["The striker scored.\nThe club won the league.", "Bake the cake & serve."]
    assert rows[0]["category_alts"] == ["Basketball"]
    # a changed source is a counted drop, not a silently different text; a missing one too
    (root / xl.HTML_CLEANING / "dragnet_data" / "GoldStandard" / "R2.txt").write_text(
        '<span class="x-nc-sel1">Another text.</span>', encoding="utf-8")
    rows, dropped = xl.load_extra(out, root, splits=splits)
    assert [r["id"] for r in rows] == ["a1"] and dropped == Counter({"text_changed": 1})
    (root / xl.HTML_CLEANING / "dragnet_data" / "GoldStandard" / "R1.txt.gz").unlink()
    rows, dropped = xl.load_extra(out, root, splits=splits)
    assert rows == [] and dropped == Counter({"text_changed": 1, "source_missing": 1})
    with pytest.raises(FileNotFoundError, match="shared data not found"):
        xl.load_extra(out, tmp_path / "absent")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: missing fields"):
        xl.read_extra(bad)


def test_overlapping_catches_a_gold_text_inside_a_longer_page():
    story = " ".join(f"word{i}" for i in range(200))
    page = "Home | News | Sports\n" + story + "\nCopyright 2024 all rights reserved"
    other = " ".join(f"other{i}" for i in range(200))
    assert xl.overlapping([story, other], [page, "short text"]) == [True, False]


def test_committed_extra_labels_rebuild_from_shared_data():
    rows = xl.read_extra()
    assert len(rows) >= 1000
    tax = load_taxonomy()
    for r in rows:
        for c in [r["category"], *r["category_alts"]]:
            tax.id_of(c)
        assert r["split"] == xl.split_of(r["site"])
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED_DATA}): the texts of the extra labels cannot be rebuilt")
    loaded, dropped = xl.load_extra(splits=("dev", "test"))
    assert len(loaded) == len(rows) and not dropped
