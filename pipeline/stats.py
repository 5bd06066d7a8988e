"""Stage accounting: every record that enters a stage leaves it kept or dropped under a named reason.

``_stats.json`` = ``{"stage", "input", "output", "dropped": {reason: n}, "errors": {kind: n},
"seconds"}`` with ``input == output + sum(dropped)``. Reasons are snake_case with a family prefix;
reasons starting with ``error_`` (unparseable records, extractor failures) are drops too and are
also listed under ``errors``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

ERROR_PREFIX = "error_"


@dataclasses.dataclass
class StageStats:
    stage: str
    input: int = 0
    output: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def errors(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.dropped.items()) if k.startswith(ERROR_PREFIX)}

    def add_reasons(self, counts: dict[str | None, int]) -> None:
        """Fold ``{reason or None: n}`` (None = kept) into the totals."""
        for reason, n in counts.items():
            self.input += n
            if reason is None:
                self.output += n
            else:
                self.dropped[reason] = self.dropped.get(reason, 0) + n

    def check(self) -> None:
        total = self.output + sum(self.dropped.values())
        if total != self.input:
            raise AssertionError(
                f"stage {self.stage}: input {self.input} != output {self.output} + dropped {total - self.output}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "stage": self.stage,
            "input": self.input,
            "output": self.output,
            "dropped": dict(sorted(self.dropped.items())),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def count_reasons(reasons: list[str | None]) -> dict[str | None, int]:
    return dict(Counter(reasons))


def format_funnel(stats: list[dict[str, Any]]) -> str:
    """A compact text table of a run: per stage input, output and each drop reason."""
    lines = []
    for s in stats:
        lines.append(f"{s['stage']:<10} in {s['input']:>10,}  out {s['output']:>10,}  ({s.get('seconds', 0):.1f}s)")
        for reason, n in sorted(s.get("dropped", {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"    - {reason:<36} {n:>10,}")
    return "\n".join(lines)
