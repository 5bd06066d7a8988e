"""Config section ``balance`` (defaults in ``conf/defaults/balance.yaml``)."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section


@register_section("balance")
@dataclasses.dataclass
class BalanceConfig:
    """Category re-sampling: a document of leaf ``c`` gets the expected number of copies
    ``s_c = scale * w_c * share_c ** (temperature - 1)``, capped at ``max_weight``, where ``w_c`` is the
    taxonomy weight (or an override) and ``scale`` makes the expected output ``target_ratio`` times the
    input. ``s_c < 1``: kept with probability ``s_c`` (hash of seed and doc_id); ``s_c >= 1``: kept with
    ``sample_weight = s_c`` for the tokenize stage to repeat."""

    taxonomy: str | None = None
    category_column: str = "category"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    default_weight: float = 1.0
    temperature: float = 1.0
    target_ratio: float = 1.0
    max_weight: float = 4.0
    chart: bool = True
    num_files: int | None = None

    def validate(self) -> None:
        if not self.category_column:
            raise ValueError("balance.category_column must name the category id column (e.g. category)")
        if not self.default_weight > 0:
            raise ValueError("balance.default_weight must be > 0 (the weight of rows without a category)")
        bad = {k: v for k, v in self.weights.items() if not v > 0}
        if bad:
            raise ValueError(f"balance.weights must all be > 0; fix {bad}")
        if not 0.0 <= self.temperature <= 1.0:
            raise ValueError(
                "balance.temperature must be in [0, 1]: 1 = natural shares x weights, 0 = equal shares"
            )
        if not self.target_ratio > 0:
            raise ValueError("balance.target_ratio must be > 0 (expected output docs / input docs, e.g. 1.0)")
        if not self.max_weight >= 1.0:
            raise ValueError("balance.max_weight must be >= 1 (the most copies a document may get, e.g. 4)")
        if self.num_files is not None and self.num_files < 1:
            raise ValueError("balance.num_files must be >= 1, or null for one output part per input file")
