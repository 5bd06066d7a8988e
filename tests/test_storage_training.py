"""Training jobs on object storage (moto on 127.0.0.1): inputs staged into a local cache (prefixes,
globs, reuse), output folders published marker-last, and the tokenizer and MoE trainer end to end
with s3:// input and output."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import storage
from pipeline.storage import staging
from tests.test_tokenize import CORPUS


def _put_tree(local: str, uri: str) -> None:
    for d, _, fs in os.walk(local):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), local).replace(os.sep, "/")
            storage.upload_file(os.path.join(d, f), f"{uri}/{rel}")


def test_stage_inputs_prefix_glob_and_cache_reuse(s3_bucket, tmp_path):
    b = s3_bucket
    storage.write_bytes(f"{b}/data/a.jsonl", b'{"text": "a"}\n')
    storage.write_bytes(f"{b}/data/sub/b.jsonl", b'{"text": "bb"}\n')
    storage.write_bytes(f"{b}/data/c.txt", b"ccc\n")
    cache = str(tmp_path / "cache")
    local = tmp_path / "local.txt"
    local.write_text("x")

    got = staging.stage_inputs([f"{b}/data", f"s3a://{b[5:]}/data/*.jsonl", str(local), "synthetic:5"], cache)
    folder, from_glob, same_local, passthrough = got
    assert same_local == str(local) and passthrough == "synthetic:5"  # not copied
    assert folder.startswith(cache) and os.path.isdir(folder)
    mirrored = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)
    assert mirrored == ["a.jsonl", "c.txt", os.path.join("sub", "b.jsonl")]
    assert open(os.path.join(folder, "sub", "b.jsonl"), "rb").read() == b'{"text": "bb"}\n'
    assert from_glob.endswith("a.jsonl") and open(from_glob, "rb").read() == b'{"text": "a"}\n'

    # A complete cached copy is reused (not downloaded again: its mtime stays) ...
    mtime = os.path.getmtime(os.path.join(folder, "c.txt"))
    assert staging.stage_inputs([f"{b}/data"], cache) == [folder]
    assert os.path.getmtime(os.path.join(folder, "c.txt")) == mtime
    # ... and an incomplete one (wrong size) is downloaded again.
    with open(os.path.join(folder, "c.txt"), "wb") as f:
        f.write(b"c")
    staging.stage_inputs([f"{b}/data"], cache)
    assert open(os.path.join(folder, "c.txt"), "rb").read() == b"ccc\n"
    assert not [f for _, _, fs in os.walk(cache) for f in fs if f.startswith(".part-")]

    with pytest.raises(FileNotFoundError, match="matches nothing"):
        staging.stage_inputs([f"{b}/nothing/*.jsonl"], cache)
    with pytest.raises(FileNotFoundError, match="no such object"):
        staging.stage_inputs([f"{b}/missing.jsonl"], cache)


def test_publish_dir_uploads_every_file_and_the_markers_last(s3_bucket, tmp_path):
    out = tmp_path / "model"
    (out / "sub").mkdir(parents=True)
    for name, data in {"weights.pt": b"W" * 100, "sub/x.json": b"{}", "config.json": b'{"v": 1}',
                       "_SUCCESS": b"", "MODEL_CARD.md": b"card"}.items():
        (out / name).write_bytes(data)
    order = staging.publish_dir(str(out), f"{s3_bucket}/models/m1/")
    dst = f"{s3_bucket}/models/m1"
    assert order[-2:] == [f"{dst}/config.json", f"{dst}/_SUCCESS"]
    assert sorted(order[:-2]) == [f"{dst}/MODEL_CARD.md", f"{dst}/sub/x.json", f"{dst}/weights.pt"]
    assert storage.read_bytes(f"{dst}/weights.pt") == b"W" * 100
    assert {e.path for e in storage.list_files(dst)} == set(order)


def test_remote_io_rewrites_flags_and_publishes_only_on_success(s3_bucket, tmp_path):
    storage.write_bytes(f"{s3_bucket}/in/a.txt", b"hello")
    seen = {}

    def run(argv):
        seen["argv"] = argv
        out = argv[argv.index("--out") + 1]
        os.makedirs(out)
        open(os.path.join(out, "config.json"), "w").write("{}")
        if "--fail" in argv:
            raise RuntimeError("boom")
        return "ok"

    cache = str(tmp_path / "c")
    argv = ["--input", f"{s3_bucket}/in/*.txt", "x.txt", "--out", f"{s3_bucket}/out", "--cache-dir", cache]
    assert staging.remote_io(argv, run, inputs=("--input",), outputs=("--out",)) == "ok"
    a = seen["argv"]
    assert a[1].startswith(cache) and a[2] == "x.txt" and "--cache-dir" not in a
    assert not os.path.exists(a[a.index("--out") + 1])  # the temporary output folder is removed
    assert storage.read_text(f"{s3_bucket}/out/config.json") == "{}"
    with pytest.raises(RuntimeError):
        staging.remote_io(argv[:4] + [f"{s3_bucket}/out2", "--fail"], run, inputs=("--input",), outputs=("--out",))
    assert not storage.exists(f"{s3_bucket}/out2/config.json")
    # Local paths reach the job unchanged.
    local = ["--input", "a", "--out", str(tmp_path / "o")]
    staging.remote_io(local, run, inputs=("--input",), outputs=("--out",))
    assert seen["argv"] == local


def test_train_tokenizer_with_s3_input_and_output(s3_bucket, tmp_path):
    from jobs.train_tokenizer import main as train_main
    from pipeline.tokenize.tokenizer import load_tokenizer

    stage = tmp_path / "stage"
    stage.mkdir()
    pq.write_table(pa.table({"doc_id": [str(i) for i in range(100)], "text": CORPUS[:100]}), stage / "part-00000.parquet")
    (stage / "_SUCCESS").write_text("")
    _put_tree(str(stage), f"{s3_bucket}/04_balance")

    info = train_main(["--input", f"s3a://{s3_bucket[5:]}/04_balance", "--output", f"{s3_bucket}/tok",
                       "--vocab-size", "400", "--cache-dir", str(tmp_path / "cache")])
    assert info["documents"] == 100
    names = {e.path.rsplit("/", 1)[1] for e in storage.list_files(f"{s3_bucket}/tok")}
    assert {"tokenizer.json", "train_info.json", "_SUCCESS"} <= names
    local = tmp_path / "tok"
    local.mkdir()
    for n in names:
        (local / n).write_bytes(storage.read_bytes(f"{s3_bucket}/tok/{n}"))
    assert load_tokenizer(local).sha256 == info["sha256"]
    # The same run on the local folder gives the same tokenizer (staging changes nothing).
    ref = train_main(["--input", str(stage), "--output", str(tmp_path / "tok-local"), "--vocab-size", "400"])
    assert ref["sha256"] == info["sha256"]


def test_train_moe_reads_s3_shards_and_publishes_the_run(s3_bucket, tmp_path):
    import torch

    from jobs.train_moe import main as moe_main
    from pipeline.tokenize.shards import tokenize_table
    from pipeline.tokenize.tokenizer import info_from_tokenizer, train_bpe

    torch.set_num_threads(1)
    shards = tmp_path / "shards"
    shards.mkdir()
    tok = info_from_tokenizer(train_bpe(CORPUS, vocab_size=600), "test-bpe")
    tokenize_table(pa.table({"doc_id": [f"d{i}" for i in range(len(CORPUS))], "text": CORPUS}), str(shards), tok,
                   seed=0, tokens_per_shard=20_000)
    _put_tree(str(shards), f"{s3_bucket}/shards")
    common = ["--config", "conf/moe/tiny.yaml", "--steps", "3", "--set", "train.seq_len=32", "--device", "cpu"]
    remote = moe_main(["--data", f"{s3_bucket}/shards", "--out", f"{s3_bucket}/runs/r1",
                       "--cache-dir", str(tmp_path / "cache"), *common])
    local = moe_main(["--data", str(shards), "--out", str(tmp_path / "r1"), *common])
    assert [h["loss"] for h in remote] == [h["loss"] for h in local]
    published = {storage.paths.relative(f"{s3_bucket}/runs/r1", e.path) for e in storage.list_files(f"{s3_bucket}/runs/r1")}
    local_files = {os.path.relpath(os.path.join(d, f), tmp_path / "r1").replace(os.sep, "/")
                   for d, _, fs in os.walk(tmp_path / "r1") for f in fs}
    assert published == local_files and "config.json" in published
    cfg = json.loads(storage.read_text(f"{s3_bucket}/runs/r1/config.json"))
    assert cfg["train"]["seq_len"] == 32


def test_stage_inputs_downloads_an_http_file_once(tmp_path):
    from tests.storage_servers import Faults, range_server

    root = tmp_path / "www"
    root.mkdir()
    (root / "docs.jsonl").write_bytes(b'{"text": "over http"}\n' * 50)
    faults = Faults()
    with range_server(str(root), faults) as url:
        cache = str(tmp_path / "cache")
        (got,) = staging.stage_inputs([f"{url}/docs.jsonl"], cache)
        assert got.startswith(cache) and open(got, "rb").read() == (root / "docs.jsonl").read_bytes()
        gets = sum(faults.gets.values())
        assert gets > 0
        assert staging.stage_inputs([f"{url}/docs.jsonl"], cache) == [got]
        assert sum(faults.gets.values()) == gets  # the complete cached copy is reused
