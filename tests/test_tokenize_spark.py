"""The tokenize stage on Spark: auto tokenizer, shards, index, stats, determinism across partitionings."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.tokenize.shards import REASON_EMPTY_TEXT, REASON_SAMPLED_OUT, iter_shard_docs, num_copies
from pipeline.tokenize.tokenizer import load_tokenizer
from tests.test_tokenize import CORPUS


def _write_stage(folder, table, files):
    folder.mkdir(parents=True)
    step = math.ceil(table.num_rows / files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i:05d}.parquet")
    (folder / "_SUCCESS").write_text("")


@pytest.mark.spark
def test_tokenize_stage_end_to_end(spark, tmp_path):
    from jobs.common import run_stage
    from jobs.tokenize import run
    from pipeline.config import load_config

    n = 120
    weights = [0.0 if i % 10 == 1 else 1.5 if i % 10 == 2 else 1.0 for i in range(n)]
    table = pa.table(
        {
            "doc_id": [f"{i:032x}" for i in range(n)],
            "text": ["" if i == 7 else CORPUS[i % len(CORPUS)] for i in range(n)],
            "sample_weight": weights,
            "lang": ["en"] * n,
        }
    )
    _write_stage(tmp_path / "in1", table, 1)
    _write_stage(tmp_path / "in3", table.take(list(range(n))[::-1]), 3)  # other order and file count
    cfg = load_config(
        overrides=[
            "spark.profile=tests",
            "tokenize.auto_vocab_size=600",
            "tokenize.tokens_per_shard=1500",
            "tokenize.num_partitions=3",
            "tokenize.batch_docs=16",
        ]
    )
    out1, out3 = str(tmp_path / "out1"), str(tmp_path / "out3")
    stats = run_stage("tokenize", run, spark, cfg, [str(tmp_path / "in1")], out1)
    run_stage("tokenize", run, spark, cfg, [str(tmp_path / "in3")], out3)

    sampled_out = sum(1 for i in range(n) if i != 7 and num_copies(cfg.seed, f"{i:032x}", weights[i]) == 0)
    assert stats["input"] == n
    assert stats["dropped"] == {REASON_EMPTY_TEXT: 1, REASON_SAMPLED_OUT: sampled_out}
    assert stats["output"] == n - 1 - sampled_out
    index = json.loads((tmp_path / "out1" / "index.json").read_text())
    copies = sum(num_copies(cfg.seed, f"{i:032x}", weights[i]) for i in range(n) if i != 7)
    assert index["documents"] == copies == stats["documents_written"]
    assert index["tokenizer"]["name"] == "tokenizer" and len(index["shards"]) >= 3
    assert (tmp_path / "out1" / "_SUCCESS").exists()

    # the auto tokenizer was saved; every document's ids are its encoding + EOS
    info = load_tokenizer(tmp_path / "out1" / "tokenizer")
    assert info.sha256 == index["tokenizer"]["sha256"] and info.eos_id == index["eos_id"]
    text_of = dict(zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist()))
    tokens = 0
    for shard in index["shards"]:
        for doc_id, ids in iter_shard_docs(str(tmp_path / "out1" / shard["file"])):
            assert ids.tolist() == info.tokenizer.encode(text_of[doc_id]).ids + [info.eos_id]
            tokens += len(ids)
    assert tokens == index["tokens"]

    # byte-identical output whatever the input partitioning and row order
    index3 = json.loads((tmp_path / "out3" / "index.json").read_text())
    assert index3 == index
    for shard in index["shards"]:
        a = (tmp_path / "out1" / shard["file"]).read_bytes()
        assert a == (tmp_path / "out3" / shard["file"]).read_bytes()
    assert (tmp_path / "out1" / "tokenizer" / "tokenizer.json").read_bytes() == (
        tmp_path / "out3" / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    # a tokenizer given by path (here: the one just trained) gives the same shards
    cfg_path = load_config(
        overrides=[
            "spark.profile=tests",
            f"tokenize.tokenizer={tmp_path / 'out1' / 'tokenizer'}",
            "tokenize.tokens_per_shard=1500",
            "tokenize.num_partitions=3",
        ]
    )
    run_stage("tokenize", run, spark, cfg_path, [str(tmp_path / "in3")], str(tmp_path / "out_path"))
    index_p = json.loads((tmp_path / "out_path" / "index.json").read_text())
    assert index_p["tokenizer"]["sha256"] == index["tokenizer"]["sha256"]
    assert index_p["shards"] == index["shards"] and not (tmp_path / "out_path" / "tokenizer").exists()
    for shard in index["shards"]:
        a = (tmp_path / "out1" / shard["file"]).read_bytes()
        assert a == (tmp_path / "out_path" / shard["file"]).read_bytes()
