"""Train a dots.llm1/Qwen2-style byte-level BPE tokenizer on a corpus.

    python -m jobs.train_tokenizer --input OUT/04_balance --output models/tokenizer-web \
        [--vocab-size 32768] [--max-docs 1000000] [--config conf/pipeline.yaml] [--set seed=1]

Inputs: a documents table (a Parquet folder or file with a ``text`` column: the output of any
pipeline stage), JSONL files (``{"text": ...}`` per line, ``.gz`` too) or plain text files (one
document per line). Files are read in sorted path order, so the same inputs give the same tokenizer.
The output is an HF tokenizer folder (``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``) that ``tokenize.tokenizer`` and ``transformers.AutoTokenizer`` load,
plus ``train_info.json`` and ``_SUCCESS``. Defaults come from the ``tokenize`` config section
(``auto_vocab_size``, ``auto_min_frequency``).

No Spark: BPE training runs in one process (HF tokenizers uses every core); read a sample with
``--max-docs`` for very large corpora.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if __package__ in (None, ""):
    # Run as a file (`spark-submit jobs/<stage>.py`): Python puts jobs/ first on sys.path, where
    # jobs/pipeline.py would shadow the pipeline package; put the repository root there instead.
    _sys.path[0] = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

import argparse
import gzip
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.config import load_config
from pipeline.tokenize.tokenizer import EOS_TOKEN, save_tokenizer_folder, tokenizer_hash, train_bpe


def _files(inputs: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = [f for f in sorted(p.rglob("*")) if f.is_file() and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)]
            if not found:
                raise ValueError(f"--input {p}: no data files inside")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ValueError(f"--input {p} does not exist")
    return out


def iter_texts(inputs: list[str]) -> Iterator[str]:
    """Documents' text from Parquet / JSONL / text files, in sorted file order."""
    for f in _files(inputs):
        name = f.name.lower()
        if name.endswith(".parquet") or (not name.endswith((".jsonl", ".json", ".gz", ".txt")) and _is_parquet(f)):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(f)
            if "text" not in pf.schema_arrow.names:
                raise ValueError(f"{f}: Parquet file has no 'text' column ({pf.schema_arrow.names})")
            for batch in pf.iter_batches(columns=["text"], batch_size=4096):
                yield from (t for t in batch.column(0).to_pylist() if t)
        elif name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(f, "rt", encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            text = json.loads(line).get("text")
                        except (json.JSONDecodeError, AttributeError) as e:
                            raise ValueError(f"{f}:{n}: not a JSON object with a 'text' field ({e})") from e
                        if text:
                            yield text
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
                yield from (line.rstrip("\n") for line in fh if line.strip())


def _is_parquet(f: Path) -> bool:
    with open(f, "rb") as fh:
        return fh.read(4) == b"PAR1"


def main(argv: list[str] | None = None) -> dict:
    """Run the job; s3:// and https:// inputs are staged into a local cache and an s3:// output is
    written locally, then published (pipeline.storage.staging; ``--cache-dir DIR``)."""
    from pipeline.storage.staging import remote_io

    return remote_io(argv, _main, inputs=("--input",), outputs=("--output",))


def _main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="jobs.train_tokenizer", description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, nargs="+", help="Parquet folder/files, JSONL or text files")
    p.add_argument("--output", required=True, help="tokenizer folder to write")
    p.add_argument("--cache-dir", default=None, help="local cache of s3:// and https:// inputs (docs/OBJECT_STORAGE.md)")
    p.add_argument("--config", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--vocab-size", type=int, default=None, help="default: tokenize.auto_vocab_size")
    p.add_argument("--min-frequency", type=int, default=None, help="default: tokenize.auto_min_frequency")
    p.add_argument("--max-docs", type=int, default=None, help="train on the first N documents only")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ValueError as e:
        p.error(str(e))
    out = Path(args.output)
    if (out / "_SUCCESS").exists() and not args.overwrite:
        print(f"[train_tokenizer] {out} is complete (_SUCCESS); skipping (use --overwrite)")
        return json.loads((out / "train_info.json").read_text())
    vocab = args.vocab_size or cfg.tokenize.auto_vocab_size
    min_freq = args.min_frequency or cfg.tokenize.auto_min_frequency
    t0 = time.time()
    stats = {"documents": 0, "chars": 0}

    def counted() -> Iterator[str]:
        for text in iter_texts(args.input):
            if args.max_docs is not None and stats["documents"] >= args.max_docs:
                return
            stats["documents"] += 1
            stats["chars"] += len(text)
            yield text

    tok = train_bpe(counted(), vocab, min_freq)
    if stats["documents"] == 0:
        raise SystemExit(f"[train_tokenizer] no documents with text in {args.input}")
    # Write into a temp folder and rename: a crashed run never leaves a folder that looks complete.
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    save_tokenizer_folder(tok, tmp, EOS_TOKEN)
    info = {
        "inputs": args.input,
        "documents": stats["documents"],
        "chars": stats["chars"],
        "vocab_size_requested": vocab,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "min_frequency": min_freq,
        "eos_token": EOS_TOKEN,
        "sha256": tokenizer_hash(tok),
        "seconds": round(time.time() - t0, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (tmp / "train_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    (out / "_SUCCESS").write_text("")
    print(f"[train_tokenizer] {info['documents']:,} docs, {info['chars']:,} chars -> vocab {info['vocab_size']:,} "
          f"in {info['seconds']:.1f}s: {out}")
    return info


if __name__ == "__main__":
    main()
