"""Tokenizer training/loading, engines, sample weights and the shard writer (no Spark)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pyarrow as pa
import pytest

from pipeline.tokenize.shards import (
    REASON_BAD_WEIGHT,
    REASON_EMPTY_TEXT,
    REASON_SAMPLED_OUT,
    SCHEMA,
    iter_shard_docs,
    num_copies,
    tokenize_table,
)
from pipeline.tokenize.tokenizer import (
    EOS_TOKEN,
    Encoder,
    info_from_tokenizer,
    load_tokenizer,
    save_tokenizer_folder,
    tiktoken_ranks,
    train_bpe,
)

# Small multilingual corpus written for these tests.
BASE = [
    "The quick brown fox jumps over the lazy dog. It's 2024 and we're testing tokenizers!",
    "Der schnelle braune Fuchs springt über den faulen Hund; Größe, Übung und Maß.",
    "El rápido zorro marrón salta sobre el perro perezoso. ¿Qué tal? ¡Muy bien!",
    "机器学习是人工智能的一个分支。我们今天测试分词器，数字 12345 也要切分。",
    "Numbers: 3.14159, 2,718 and 1e-5; code: def f(x): return x ** 2  # comment\n\n\tindent",
    "Émojis 😀🚀 and combining marks: e\u0301 vs é, Å vs A\u030a.  Multiple   spaces \r\n end.",
    "Quote of a special token <|endoftext|> inside a web page must stay plain text.",
]
CORPUS = [f"{t} Variant {i}: {t[::-1] if i % 3 == 0 else t.upper()}" for i in range(40) for t in BASE]


@pytest.fixture(scope="module")
def tok():
    return train_bpe(CORPUS, vocab_size=700, min_frequency=2)


@pytest.fixture(scope="module")
def info(tok):
    return info_from_tokenizer(tok, "test-bpe")


def test_training_is_deterministic_and_byte_level(tok):
    again = train_bpe(CORPUS, vocab_size=700, min_frequency=2)
    assert again.to_str() == tok.to_str()
    assert tok.token_to_id(EOS_TOKEN) == 0
    # byte-level: arbitrary bytes round-trip, nothing is unknown
    text = "ǅ\u2028\x00 ünïcödé 😀"
    enc = tok.encode(text, add_special_tokens=False)
    assert tok.decode(enc.ids) == text


def test_folder_loads_with_transformers_and_by_path(tmp_path, tok, info):
    from transformers import AutoTokenizer

    save_tokenizer_folder(tok, tmp_path / "tk")
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "tk"), local_files_only=True)
    assert hf.eos_token == EOS_TOKEN
    from_dir = load_tokenizer(tmp_path / "tk")
    from_file = load_tokenizer(tmp_path / "tk" / "tokenizer.json")
    assert from_dir.sha256 == from_file.sha256 == info.sha256
    assert from_dir.eos_id == info.eos_id
    for text in BASE[:3]:
        assert hf(text, add_special_tokens=False)["input_ids"] == from_dir.tokenizer.encode(text).ids
    with pytest.raises(ValueError, match="no EOS token"):
        load_tokenizer(tmp_path / "tk", eos_token="<nope>")
    with pytest.raises(ValueError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")


def test_engines_agree_and_eos_is_appended(info):
    pytest.importorskip("tiktoken", reason="tiktoken (requirements.txt) is not installed")
    fast = Encoder(info, "auto", verify_texts=BASE)
    ref = Encoder(info, "hf")
    assert fast.engine == "tiktoken", fast.why_not_tiktoken
    texts = BASE + ["", "x" * 5000]
    ids_f, len_f = fast.encode(texts)
    ids_r, len_r = ref.encode(texts)
    assert ids_f.dtype == np.uint32 and np.array_equal(ids_f, ids_r) and np.array_equal(len_f, len_r)
    ends = np.cumsum(len_f) - 1
    assert np.all(ids_f[ends] == info.eos_id)
    # the EOS string inside a document is text, not an EOS id
    doc = ids_f[: len_f[0]]
    assert np.count_nonzero(ids_f[len_f[:6].sum() : len_f[:7].sum()] == info.eos_id) == 1
    assert np.count_nonzero(doc == info.eos_id) == 1


def test_tiktoken_refuses_tokenizers_it_cannot_run_exactly(tok):
    from tokenizers import Tokenizer, models, pre_tokenizers

    wp = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1, EOS_TOKEN: 2}, unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.Whitespace()
    assert isinstance(tiktoken_ranks(wp), str)
    info = info_from_tokenizer(wp, "wordlevel")
    assert Encoder(info, "auto").engine == "hf"
    with pytest.raises(ValueError, match="not exact"):
        Encoder(info, "tiktoken")
    # a tokenizer whose ids differ from HF on a verification text falls back to HF
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True  # HF then looks whole words up first; tiktoken does too
    assert not isinstance(tiktoken_ranks(Tokenizer.from_str(json.dumps(spec))), str)


def test_num_copies_rule():
    assert num_copies(1, "d", None) == 1
    assert num_copies(1, "d", 3.0) == 3
    assert num_copies(1, "d", 0.0) == 0
    assert num_copies(1, "d", -1.0) == REASON_BAD_WEIGHT
    assert num_copies(1, "d", float("nan")) == REASON_BAD_WEIGHT
    draws = [num_copies(7, f"doc{i}", 1.25) for i in range(4000)]
    assert set(draws) == {1, 2}
    assert abs(np.mean(draws) - 1.25) < 0.03
    assert draws == [num_copies(7, f"doc{i}", 1.25) for i in range(4000)]  # deterministic
    assert draws != [num_copies(8, f"doc{i}", 1.25) for i in range(4000)]  # seed matters


def _docs(n=60):
    return pa.table(
        {
            "doc_id": [f"d{i:03d}" for i in range(n)],
            "text": [CORPUS[i % len(CORPUS)] for i in range(n)],
            "sample_weight": [0.0 if i == 1 else 2.0 if i == 2 else float("nan") if i == 3 else 1.0 for i in range(n)],
        }
    )


def test_tokenize_table_writes_shards_and_index(tmp_path, info):
    table = pa.concat_tables([_docs(), pa.table({"doc_id": ["empty"], "text": [""], "sample_weight": [1.0]})])
    index, counts = tokenize_table(table, str(tmp_path / "s"), info, seed=3, tokens_per_shard=800)
    assert counts == {None: 58, REASON_SAMPLED_OUT: 1, REASON_BAD_WEIGHT: 1, REASON_EMPTY_TEXT: 1}
    assert index["documents"] == 59  # d002 twice
    assert index["vocab_size"] == info.vocab_size and index["eos_id"] == info.eos_id
    assert index["tokenizer"]["sha256"] == info.sha256
    assert index["engine"] == ("tiktoken" if importlib.util.find_spec("tiktoken") else "hf")
    assert len(index["shards"]) > 2
    seen: dict[str, list] = {}
    total = 0
    for shard in index["shards"]:
        path = tmp_path / "s" / shard["file"]
        with pa.memory_map(str(path)) as src:
            t = pa.ipc.open_file(src).read_all()
        assert t.schema.equals(SCHEMA)
        assert t.num_rows == shard["documents"]
        docs = list(iter_shard_docs(str(path)))
        tokens = sum(len(ids) for _, ids in docs)
        assert tokens == shard["tokens"]
        # a shard closes after the document crossing the limit: only its last doc may cross it
        assert tokens - len(docs[-1][1]) < 800
        total += tokens
        for doc_id, ids in docs:
            seen.setdefault(doc_id, []).append(ids)
            assert ids[-1] == info.eos_id
    assert total == index["tokens"]
    assert len(seen["d002"]) == 2 and "d001" not in seen and "d003" not in seen
    want = info.tokenizer.encode(CORPUS[5], add_special_tokens=False).ids + [info.eos_id]
    assert seen["d005"][0].tolist() == want
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith("_tmp")]


def test_tokenize_table_is_byte_identical_across_runs_and_row_order(tmp_path, info):
    table = _docs()
    tokenize_table(table, str(tmp_path / "a"), info, seed=3, tokens_per_shard=500)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    tokenize_table(shuffled, str(tmp_path / "b"), info, seed=3, tokens_per_shard=500)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_config_section_defaults_and_validation():
    from pipeline.config import load_config

    cfg = load_config()
    assert cfg.tokenize.train_auto and cfg.tokenize.tokens_per_shard == 1 << 27
    with pytest.raises(ValueError, match="tokenize.engine"):
        load_config(overrides=["tokenize.engine=fast"])


def test_train_tokenizer_job_reads_parquet_jsonl_and_text(tmp_path):
    import gzip

    import pyarrow.parquet as pq

    from jobs.train_tokenizer import main as train_main

    stage = tmp_path / "stage"
    stage.mkdir()
    table = pa.table({"doc_id": [str(i) for i in range(100)], "text": CORPUS[:100]})
    pq.write_table(table, stage / "part-00000.parquet")
    (stage / "_SUCCESS").write_text("")
    (stage / "_stats.json").write_text("{}")  # side files of a stage output are skipped
    jsonl = tmp_path / "docs.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as f:
        for t in CORPUS[100:200]:
            f.write(json.dumps({"text": t}) + "\n")
    txt = tmp_path / "docs.txt"
    txt.write_text("\n".join(t.replace("\r", " ").replace("\n", " ") for t in CORPUS[200:280]), encoding="utf-8")

    info = train_main(["--input", str(stage), str(jsonl), str(txt), "--output", str(tmp_path / "tok"),
                       "--vocab-size", "600"])
    assert info["documents"] == 280 and info["vocab_size"] <= 600
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.sha256 == info["sha256"] and loaded.eos_token == EOS_TOKEN
    assert (tmp_path / "tok" / "_SUCCESS").exists()
    again = train_main(["--input", str(stage), str(jsonl), str(txt), "--output", str(tmp_path / "tok2"),
                        "--vocab-size", "600"])
    assert again["sha256"] == info["sha256"]  # deterministic
    assert train_main(["--input", str(stage), "--output", str(tmp_path / "tok"), "--vocab-size", "600"]) == info
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        train_main(["--input", str(bad), "--output", str(tmp_path / "tok3")])
