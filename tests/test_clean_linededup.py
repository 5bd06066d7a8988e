"""Line-level dedup pieces and the plain-Python reference on a crafted corpus with known counts."""

from __future__ import annotations

import datetime as dt

from pipeline.clean.linededup import (
    candidate_lines,
    dedup_lines_reference,
    line_hash,
    normalize_line,
    remove_lines,
)


def test_normalize_line():
    assert normalize_line("  Hello\t  WORLD  ") == "hello world"
    assert normalize_line("Ｆｕｌｌｗｉｄｔｈ １２") == "fullwidth 12"  # NFKC
    assert normalize_line("Straße") == "strasse"  # casefold
    assert normalize_line("Posted 3 May") != normalize_line("Posted 4 May")  # digits are kept
    assert line_hash("a") == line_hash(normalize_line(" A "))
    assert -(2**63) <= line_hash("x") < 2**63


def test_candidates_head_and_tail_skip_symbol_lines():
    lines = ["", "----", "L0"] + [f"L{i}" for i in range(1, 12)] + ["***", "  ", "© ™"]
    text = "\n".join(lines)
    cands = candidate_lines(text, 5, 5)
    picked = [lines[i] for i, _, _ in cands]
    assert picked == ["L0", "L1", "L2", "L3", "L4", "L7", "L8", "L9", "L10", "L11"]
    # short document: head and tail overlap, each line once
    short = candidate_lines("a\nb\nc", 5, 5)
    assert [i for i, _, _ in short] == [0, 1, 2]
    assert candidate_lines("", 5, 5) == [] and candidate_lines(None, 5, 5) == []
    assert [i for i, _, _ in candidate_lines("a\nb\nc\nd", 1, 1)] == [0, 3]
    assert [i for i, _, _ in candidate_lines("a\nb\nc\nd", 2, 0)] == [0, 1]


def test_remove_lines():
    assert remove_lines("a\nb\nc", [1]) == ("a\nc", 1)
    assert remove_lines("a\nb\nc", []) == ("a\nb\nc", 0)
    assert remove_lines("a\nb", [0, 1]) == ("", 2)


def _corpus(n_docs: int, footer: str = "Copyright ACME Corp. All rights reserved."):
    base = dt.datetime(2024, 1, 1)
    docs = []
    for i in range(n_docs):
        body = "\n".join(f"doc {i} line {j} with unique words" for j in range(12))
        # same fetch_time for pairs of documents: doc_id breaks the tie
        docs.append((f"d{i:04d}", base + dt.timedelta(minutes=i // 2), f"{body}\n{footer}"))
    return docs


def test_reference_keeps_first_max_occurrences():
    docs = _corpus(250)
    footer_key = line_hash(normalize_line("Copyright ACME Corp. All rights reserved."))
    out, counts = dedup_lines_reference(docs, max_occurrences=200)
    assert counts[footer_key] == 250
    kept = [d for d, t in out.items() if t.endswith("reserved.")]
    assert sorted(kept) == [f"d{i:04d}" for i in range(200)]  # first 200 by (fetch_time, doc_id)
    assert all(out[f"d{i:04d}"].count("\n") == 11 for i in range(200, 250))
    # the unique lines are counted once each and never removed
    assert all(counts[line_hash(normalize_line(f"doc 3 line {j} with unique words"))] == 1 for j in (0, 11))


def test_reference_order_is_fetch_time_then_doc_id():
    docs = _corpus(6)
    docs = [docs[i] for i in (5, 3, 1, 0, 2, 4)]  # input order must not matter
    out, _ = dedup_lines_reference(docs, max_occurrences=3)
    assert sorted(d for d, t in out.items() if t.endswith("reserved.")) == ["d0000", "d0001", "d0002"]


def test_reference_middle_lines_and_case_variants():
    # a frequent line in the middle (not head/tail) is never counted nor removed
    docs = []
    for i in range(10):
        lines = (
            [f"head {i}.{j}" for j in range(6)] + ["SHARED middle line"] + [f"tail {i}.{j}" for j in range(6)]
        )
        docs.append((f"m{i}", None, "\n".join(lines)))
    out, counts = dedup_lines_reference(docs, max_occurrences=2)
    assert all("SHARED middle line" in t for t in out.values())
    assert line_hash(normalize_line("SHARED middle line")) not in counts
    # case/whitespace variants count as one line
    docs = [
        (f"v{i}", None, f"Body text {i}\n" + ("Share  THIS" if i % 2 else "share this")) for i in range(4)
    ]
    out, counts = dedup_lines_reference(docs, max_occurrences=2)
    assert counts[line_hash("share this")] == 4
    assert sum("hare" in t for t in out.values()) == 2


def test_reference_incremental_previous_counts():
    docs = _corpus(100)
    key = line_hash(normalize_line("Copyright ACME Corp. All rights reserved."))
    out, merged = dedup_lines_reference(docs, max_occurrences=200, previous_counts={key: 150, 7: 3})
    assert merged[key] == 250 and merged[7] == 3
    kept = sorted(d for d, t in out.items() if t.endswith("reserved."))
    assert kept == [f"d{i:04d}" for i in range(50)]
    out, _ = dedup_lines_reference(docs, max_occurrences=200, previous_counts={key: 500})
    assert not any(t.endswith("reserved.") for t in out.values())
