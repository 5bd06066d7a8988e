"""Line-level dedup (dots.llm1 technical report, Sec. 3 "rule-based processing").

For each document the first ``head`` and last ``tail`` *content* lines are candidates (a content
line has at least one letter or digit; lines of only whitespace, punctuation or symbols are
ignored). Each candidate is keyed by a 64-bit hash of its normalized form; over the whole dataset a
key seen more than ``max_occurrences`` times keeps its first ``max_occurrences`` occurrences, in the
order (fetch_time, doc_id, line index), and the later ones are deleted from their documents.

Line normalization (the counting key): Unicode NFKC, casefold, every run of whitespace collapsed to
one space, leading/trailing whitespace stripped. Digits and punctuation are kept, so
"Posted 3 May" and "Posted 4 May" are different lines.

The Spark job does the counting; this module holds the per-document pieces and a plain-Python
reference of the whole algorithm (:func:`dedup_lines_reference`) used by the tests.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from pipeline.clean.text import is_symbol_only

_WS = re.compile(r"\s+")


def normalize_line(line: str) -> str:
    """NFKC + casefold + collapse whitespace + strip (the line-dedup counting key)."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", line).casefold()).strip()


def line_hash(normalized: str) -> int:
    """Signed 64-bit key of a normalized line (BLAKE2b, 8-byte digest): fits Spark's LongType."""
    return int.from_bytes(
        hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest(), "little", signed=True
    )


def candidate_lines(text: str | None, head: int = 5, tail: int = 5) -> list[tuple[int, int, str]]:
    """``[(line_index, key, normalized_line)]`` for the first ``head`` and last ``tail`` content lines.

    ``line_index`` counts every line of ``text.split("\\n")``; a line both in the head and the tail
    (short documents) appears once.
    """
    if not text:
        return []
    lines = text.split("\n")
    content = [i for i, ln in enumerate(lines) if not is_symbol_only(ln)]
    picked = sorted(set(content[:head]) | set(content[len(content) - tail :] if tail else []))
    out = []
    for i in picked:
        norm = normalize_line(lines[i])
        out.append((i, line_hash(norm), norm))
    return out


def remove_lines(text: str, indices: Iterable[int]) -> tuple[str, int]:
    """``text`` without the lines at ``indices`` (indices into ``text.split("\\n")``), re-joined
    with ``\\n``; returns ``(new_text, removed_count)``."""
    drop = set(indices)
    if not drop or not text:
        return text, 0
    lines = text.split("\n")
    kept = [ln for i, ln in enumerate(lines) if i not in drop]
    return "\n".join(kept), len(lines) - len(kept)


def dedup_lines_reference(
    docs: Sequence[tuple[str, object, str]],
    max_occurrences: int = 200,
    head: int = 5,
    tail: int = 5,
    previous_counts: dict[int, int] | None = None,
) -> tuple[dict[str, str], dict[int, int]]:
    """Plain-Python reference of the distributed job.

    ``docs``: ``[(doc_id, fetch_time, text)]``. Returns ``({doc_id: new_text}, merged_counts)``
    where merged_counts = previous counts + this dataset's candidate-line counts.
    """
    prev = previous_counts or {}
    occ: list[tuple[object, str, int, int]] = []
    for doc_id, ft, text in docs:
        for idx, key, _ in candidate_lines(text, head, tail):
            occ.append((ft, doc_id, idx, key))
    counts = Counter(k for *_, k in occ)
    merged = Counter(prev)
    merged.update(counts)
    seen: dict[int, int] = defaultdict(int)
    delete: dict[str, list[int]] = defaultdict(list)
    for _ft, doc_id, idx, key in sorted(occ, key=lambda o: (o[0] is None, o[0], o[1], o[2])):
        if merged[key] <= max_occurrences:
            continue
        seen[key] += 1
        if prev.get(key, 0) + seen[key] > max_occurrences:
            delete[doc_id].append(idx)
    return {d: remove_lines(t, delete.get(d, []))[0] for d, _, t in docs}, dict(merged)
