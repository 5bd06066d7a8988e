"""Tokenize throughput per CPU core: our shard path vs datatrove's DocumentTokenizer, same documents.

    .venv/bin/python -m bench.tokenizer_speed [--input DOCS.parquet|FOLDER] [--tokenizer PATH]
        [--datatrove-python /work/bench-venv/bin/python] [--repeat 2] [--max-docs N] [--json OUT]

Documents: ``--input`` (a documents table with a ``text`` column), else the gold texts of
``../shared/data/html-cleaning-dataset-merged`` (real web page text, read in place). Tokenizer:
``--tokenizer``, else a Qwen2-style BPE (vocab 32768) trained on those documents first (not timed).

Every side runs on one thread (RAYON_NUM_THREADS=1) and is timed in CPU seconds of its process
(``time.process_time``), so figures are tokens per second per core and do not depend on how busy
the machine is. Sides:

* ``ours``: ``Encoder`` (engine auto = tiktoken when exact) + ``ShardWriter`` -> Arrow shards
* ``ours-hf``: the same with engine hf (``encode_batch_fast``)
* ``hf-encode_batch``: ``Tokenizer.encode_batch`` + ``.ids`` only (no writing)
* ``datatrove``: ``DocumentTokenizer.run`` (encode_batch + its .ds writer, no shuffle), in the
  Python given by ``--datatrove-python`` (datatrove is not a project dependency).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import write_json

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "html-cleaning-dataset-merged"

DATATROVE_SCRIPT = r"""
import json, os, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"; os.environ["TOKENIZERS_PARALLELISM"] = "false"
from datatrove.data import Document
from datatrove.pipeline.tokens import DocumentTokenizer
docs_path, tok_path, out, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = [json.loads(l)["text"] for l in open(docs_path, encoding="utf-8")]
best = None
for r in range(repeat):
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    step = DocumentTokenizer(out + f"/{r}", tokenizer_name_or_path=tok_path, eos_token="<|endoftext|>",
                             shuffle_documents=False, batch_size=512)
    step.tokenizer  # load outside the timing
    t = time.process_time()
    step.run(iter(docs), rank=0, world_size=1)
    dt = time.process_time() - t
    best = dt if best is None else min(best, dt)
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out + "/0") for f in fs if f.endswith(".ds"))
tokens = size // step.token_size  # datatrove stores uint16 ids when the vocabulary fits
print(json.dumps({"cpu_s": best, "tokens": tokens}))
"""


def load_texts(input_path: str | None) -> list[str]:
    if input_path:
        import pyarrow.dataset as ds

        return [t for t in ds.dataset(input_path, format="parquet").to_table(columns=["text"]).column(0).to_pylist() if t]
    files = sorted(glob.glob(str(SHARED / "*" / "GoldStandard" / "*")))
    if not files:
        raise SystemExit(f"{SHARED} is absent: pass --input DOCS.parquet (a documents table with a text column)")
    texts = []
    for f in files:
        raw = gzip.open(f).read() if f.endswith(".gz") else open(f, "rb").read()
        text = raw.decode("utf-8", "replace").strip()
        if text:
            texts.append(text)
    return texts


def time_side(fn, repeat: int) -> tuple[float, int]:
    best, tokens = None, 0
    for _ in range(repeat):
        t = time.process_time()
        tokens = fn()
        dt = time.process_time() - t
        best = dt if best is None else min(best, dt)
    return best, tokens


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--datatrove-python", default="/work/bench-venv/bin/python")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--max-docs", type=int, default=None)
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    os.environ["RAYON_NUM_THREADS"] = "1"  # one core per side: figures are per core
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from pipeline.tokenize.shards import ShardWriter, encode_into
    from pipeline.tokenize.tokenizer import (
        Encoder,
        info_from_tokenizer,
        load_tokenizer,
        save_tokenizer_folder,
        train_bpe,
    )

    texts = load_texts(args.input)[: args.max_docs]
    work = Path(tempfile.mkdtemp(prefix="bench-tokenize-"))
    try:
        if args.tokenizer:
            info = load_tokenizer(args.tokenizer)
            tok_path = args.tokenizer
        else:
            tok = train_bpe(texts, 32768)
            save_tokenizer_folder(tok, work / "tok")
            info = info_from_tokenizer(tok, "bench-bpe")
            tok_path = str(work / "tok" / "tokenizer.json")
        print(f"{len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} M chars, vocab {info.vocab_size:,}")
        results: dict[str, tuple[float, int]] = {}

        # Warm-up outside the timing: the first Arrow IPC write pays pyarrow's lazy initialisation.
        warm = ShardWriter(str(work / "warm"), "shard-00000", 1 << 27)
        encode_into(warm, Encoder(info, "hf"), ((str(i), t) for i, t in enumerate(texts[:16])), 512)
        warm.close()
        for name, engine in (("ours", "auto"), ("ours-hf", "hf")):
            enc = Encoder(info, engine, verify_texts=texts[:256])
            enc.encode(texts[:16])  # warm-up outside the timing (tiktoken compiles its regex lazily)

            def run_ours(enc=enc, name=name) -> int:
                out = work / name
                shutil.rmtree(out, ignore_errors=True)
                writer = ShardWriter(str(out), "shard-00000", 1 << 27)
                encode_into(writer, enc, ((str(i), t) for i, t in enumerate(texts)), 512)
                return sum(s.tokens for s in writer.close())

            results[f"{name} ({enc.engine})"] = time_side(run_ours, args.repeat)

        same = all(
            (work / "ours" / f.name).read_bytes() == f.read_bytes() for f in sorted((work / "ours-hf").iterdir())
        )
        print(f"shards of both engines byte-identical on all {len(texts):,} documents: {same}")

        hf = info.tokenizer

        def run_hf() -> int:
            n = 0
            for i in range(0, len(texts), 512):
                n += sum(len(e.ids) + 1 for e in hf.encode_batch(texts[i : i + 512], add_special_tokens=False))
            return n

        hf.encode_batch(texts[:16])
        results["hf-encode_batch"] = time_side(run_hf, args.repeat)

        if Path(args.datatrove_python).exists():
            docs = work / "docs.jsonl"
            with open(docs, "w", encoding="utf-8") as f:
                for t in texts:
                    f.write(json.dumps({"text": t}) + "\n")
            out = subprocess.run(
                [args.datatrove_python, "-c", DATATROVE_SCRIPT, str(docs), tok_path, str(work / "dt"), str(args.repeat)],
                check=True, capture_output=True, text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results["datatrove DocumentTokenizer"] = (r["cpu_s"], r["tokens"])
        else:
            print(f"datatrove: {args.datatrove_python} is absent (python3 -m venv /work/bench-venv && "
                  "/work/bench-venv/bin/pip install datatrove==0.10.1); skipping that side")

        ref = results.get("datatrove DocumentTokenizer")
        print(f"{'side':<32} {'tokens':>12} {'cpu s':>8} {'tokens/s/core':>14} {'vs datatrove':>12}")
        sides = {}
        for name, (cpu, tokens) in results.items():
            rate = tokens / cpu
            vs = rate / (ref[1] / ref[0]) if ref else None
            sides[name] = {"tokens": tokens, "cpu_s": cpu, "tokens_per_s_core": rate, "vs_datatrove": vs}
            print(f"{name:<32} {tokens:>12,} {cpu:>8.2f} {rate:>14,.0f} {f'{vs:.2f}x' if vs else '-':>12}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {"documents": len(texts), "chars": sum(map(len, texts)), "vocab": info.vocab_size,
               "engines_identical": same, "datatrove": ref is not None, "sides": sides}
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
