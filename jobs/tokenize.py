"""Stage ``tokenize``: documents table -> memory-mappable Arrow token shards + ``index.json``.

    python -m jobs.tokenize --input OUT/04_balance --output OUT/05_tokenize [--set tokenize.tokenizer=PATH]

Plan (the per-record logic lives in ``pipeline.tokenize``):

1. Tokenizer, on the driver: ``tokenize.tokenizer`` is a tokenizer.json / HF folder, or ``auto``:
   a Qwen2-style byte-level BPE trained on a deterministic sample of the input (the documents with
   the smallest xxhash64(seed, doc_id)), saved to ``OUT/tokenizer/``. The encoding engine
   (tiktoken when exact, else HF) is decided here once, so every task encodes the same way.
2. ``sample_weight`` -> copies (``pipeline.tokenize.shards.num_copies``), one row per copy with an
   order key hash64(seed:doc_id:copy); dropped documents become one count row per reason.
3. Hash-partition by ``doc_id`` into ``tokenize.num_partitions`` and sort by the order key: the
   content of every partition is fixed by the data and config alone, never by input partitioning.
4. Each task encodes its rows in batches and streams them into ``shard-PPPPP-JJJJJ.arrow`` files
   (temp name + rename), returning one small row per shard and per drop reason.
5. The driver writes ``index.json`` once every task succeeded, and the stats
   (input = output + dropped, output = kept input documents; copies and tokens under extras).
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import os
import sys

if __name__ == "__main__":  # `python jobs/tokenize.py`: jobs/ first on sys.path would shadow the stdlib
    _here = os.path.dirname(os.path.abspath(__file__))  # `tokenize` module and the `pipeline` package
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

from collections.abc import Iterator  # noqa: E402

import pyarrow as pa  # noqa: E402

from jobs.common import StageContext, main  # noqa: E402
from pipeline.tokenize.shards import (  # noqa: E402
    ShardMeta,
    ShardWriter,
    build_index,
    encode_into,
    expand_documents,
    open_fs,
)
from pipeline.tokenize.tokenizer import (  # noqa: E402
    EOS_TOKEN,
    Encoder,
    info_from_tokenizer,
    load_tokenizer,
    tokenizer_folder_files,
    train_bpe,
)

TOKENIZER_DIR = "tokenizer"
SAMPLE_MAX_CHARS = 20_000  # per document, for tokenizer training and verification samples

EXPANDED = pa.schema(
    [
        ("order_key", pa.int64()),
        ("doc_id", pa.string()),
        ("copy", pa.int32()),
        ("text", pa.string()),
        ("reason", pa.string()),
        ("n", pa.int64()),  # input documents this row accounts for
    ]
)
EXPANDED_DDL = "order_key bigint, doc_id string, copy int, text string, reason string, n bigint"
RESULTS = pa.schema(
    [("kind", pa.string()), ("name", pa.string()), ("documents", pa.int64()), ("tokens", pa.int64())]
)
RESULTS_DDL = "kind string, name string, documents bigint, tokens bigint"


def expand_batches(batches: Iterator[pa.RecordBatch], seed: int, use_weight: bool) -> Iterator[pa.RecordBatch]:
    """mapInArrow: documents -> one row per emitted copy + one count row per drop reason."""
    for b in batches:
        weights = b.column("sample_weight").to_pylist() if use_weight else None
        rows, counts = expand_documents(b.column("doc_id").to_pylist(), b.column("text").to_pylist(), weights, seed)
        keys, ids, copies, texts = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
        drops = [(r, n) for r, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if r is not None]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(keys + [0] * len(drops), pa.int64()),
                pa.array(ids + [None] * len(drops), pa.string()),
                pa.array(copies + [-1] * len(drops), pa.int32()),
                pa.array(texts + [None] * len(drops), pa.string()),
                pa.array([None] * len(rows) + [r for r, _ in drops], pa.string()),
                pa.array([int(c == 0) for c in copies] + [n for _, n in drops], pa.int64()),
            ],
            schema=EXPANDED,
        )


_ENCODERS: dict[str, Encoder] = {}


def _encoder(tok_json: str, name: str, eos_token: str, engine: str) -> Encoder:
    """One Encoder per executor process and tokenizer (building it parses the whole vocabulary)."""
    from tokenizers import Tokenizer

    key = f"{hash(tok_json)}:{engine}"
    if key not in _ENCODERS:
        info = info_from_tokenizer(Tokenizer.from_str(tok_json), name, eos_token)
        _ENCODERS[key] = Encoder(info, engine)  # engine already verified on the driver
    return _ENCODERS[key]


def write_partition(
    batches: Iterator[pa.RecordBatch], out_uri: str, tok_bc, name: str, eos_token: str, engine: str,
    tokens_per_shard: int, batch_docs: int,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow: one partition's sorted rows -> shard files; yields per-shard and per-reason rows."""
    from pyspark import TaskContext

    encoder = _encoder(tok_bc.value, name, eos_token, engine)
    writer = ShardWriter(out_uri, f"shard-{TaskContext.get().partitionId():05d}", tokens_per_shard)
    counts: dict[str | None, int] = {}

    def rows():
        for b in batches:
            d = b.to_pydict()
            for doc_id, text, reason, n in zip(d["doc_id"], d["text"], d["reason"], d["n"]):
                counts[reason] = counts.get(reason, 0) + n
                if reason is None:
                    yield doc_id, text

    try:
        encode_into(writer, encoder, rows(), batch_docs)
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    out = [("shard", s.file, s.documents, s.tokens) for s in shards]
    out += [("reason", r, n, 0) for r, n in counts.items() if r is not None]
    out.append(("kept", "", counts.get(None, 0), 0))
    yield pa.RecordBatch.from_arrays([pa.array(list(c)) for c in zip(*out)], schema=RESULTS)


def run(ctx: StageContext) -> None:
    from pyspark.sql import functions as F

    cfg, seed, spark = ctx.section, ctx.cfg.seed, ctx.spark
    df = ctx.read_previous()
    missing = {"doc_id", "text"} - set(df.columns)
    if missing:
        raise ValueError(f"tokenize: input {ctx.inputs} lacks column(s) {sorted(missing)}")
    use_weight = cfg.sample_weight and "sample_weight" in df.columns
    cols = ["doc_id", "text"] + (["sample_weight"] if use_weight else [])
    if use_weight:
        df = df.withColumn("sample_weight", F.col("sample_weight").cast("double"))
    df = df.select(*cols)
    n_parts = cfg.num_partitions or int(ctx.cfg.spark.settings().get("spark.sql.shuffle.partitions", 8))

    # 1. tokenizer and engine, decided once on the driver
    want = cfg.auto_sample_docs if cfg.train_auto else cfg.verify_docs
    sample = [
        r.text
        for r in df.where(F.col("text").isNotNull() & (F.length("text") > 0))
        .select(F.substring("text", 1, SAMPLE_MAX_CHARS).alias("text"), F.xxhash64(F.lit(seed), "doc_id").alias("k"), "doc_id")
        .orderBy("k", "doc_id")
        .limit(max(want, 1))
        .collect()
    ]
    if cfg.train_auto:
        tok = train_bpe(sample, cfg.auto_vocab_size, cfg.auto_min_frequency)
        for fname, text in tokenizer_folder_files(tok, EOS_TOKEN).items():
            ctx.fs.write_text(ctx.path(f"{TOKENIZER_DIR}/{fname}"), text)
        info = info_from_tokenizer(tok, TOKENIZER_DIR, EOS_TOKEN)  # name relative to OUT
    else:
        info = load_tokenizer(cfg.tokenizer, cfg.eos_token)
    encoder = Encoder(info, cfg.engine, verify_texts=sample[: cfg.verify_docs])
    tok_bc = spark.sparkContext.broadcast(info.to_json())

    # 2-4. expand copies, place them deterministically, encode and write shards in the tasks
    expanded = df.mapInArrow(lambda it: expand_batches(it, seed, use_weight), EXPANDED_DDL)
    placed = expanded.repartition(n_parts, "doc_id").sortWithinPartitions("order_key", "doc_id", "copy")
    out_uri = ctx.staging
    args = (out_uri, tok_bc, info.name, info.eos_token, encoder.engine, cfg.tokens_per_shard, cfg.batch_docs)
    results = placed.mapInArrow(lambda it: write_partition(it, *args), RESULTS_DDL).collect()
    tok_bc.unpersist()

    # 5. driver: clean failed attempts' temp files, then the index and the stats
    fs, base = open_fs(out_uri)
    import pyarrow.fs as pafs

    for info_ in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
        if info_.base_name.startswith("_tmp-"):
            fs.delete_file(info_.path)
    shards = [ShardMeta(r["name"], r["documents"], r["tokens"]) for r in results if r["kind"] == "shard"]
    counts: dict[str | None, int] = {}
    for r in results:
        if r["kind"] in ("reason", "kept"):
            key = r["name"] if r["kind"] == "reason" else None
            counts[key] = counts.get(key, 0) + r["documents"]
    ctx.stats.add_reasons(counts)
    index = build_index(info, encoder.engine, shards, input_documents=sum(counts.values()), seed=seed)
    ctx.write_json("index.json", index)
    ctx.stats.extra.update(
        {
            "documents_written": index["documents"],
            "tokens": index["tokens"],
            "shards": len(shards),
            "engine": encoder.engine,
            "tokenizer": info.name,
            "tokenizer_sha256": info.sha256,
        }
    )


if __name__ == "__main__":
    main("tokenize", run, description=__doc__.splitlines()[0])
