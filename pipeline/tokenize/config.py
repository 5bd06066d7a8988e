"""Config section ``tokenize`` (defaults in ``conf/defaults/tokenize.yaml``)."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section

ENGINES = ("auto", "hf", "tiktoken")


@register_section("tokenize")
@dataclasses.dataclass
class TokenizeConfig:
    """Documents -> Arrow token shards. ``tokenizer`` is a tokenizer.json / HF folder path, or
    ``auto`` to train a Qwen2-style byte-level BPE (as dots.llm1 uses) on the stage's own input."""

    tokenizer: str = "auto"
    eos_token: str = ""
    engine: str = "auto"
    verify_docs: int = 256
    tokens_per_shard: int = 1 << 27
    num_partitions: int | None = None
    batch_docs: int = 512
    sample_weight: bool = True
    auto_vocab_size: int = 32768
    auto_min_frequency: int = 2
    auto_sample_docs: int = 100_000

    @property
    def train_auto(self) -> bool:
        return self.tokenizer.strip().lower() in ("", "auto")

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"tokenize.engine={self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.tokens_per_shard < 1:
            raise ValueError("tokenize.tokens_per_shard must be >= 1 (e.g. 134217728)")
        if self.batch_docs < 1:
            raise ValueError("tokenize.batch_docs must be >= 1 (e.g. 512)")
        if self.num_partitions is not None and self.num_partitions < 1:
            raise ValueError("tokenize.num_partitions must be >= 1, or null for spark.sql.shuffle.partitions")
        if self.verify_docs < 0:
            raise ValueError("tokenize.verify_docs must be >= 0")
        if self.auto_vocab_size < 512:
            raise ValueError("tokenize.auto_vocab_size must be >= 512 (256 bytes + specials + merges)")
        if self.auto_sample_docs < 1 or self.auto_min_frequency < 1:
            raise ValueError("tokenize.auto_sample_docs and tokenize.auto_min_frequency must be >= 1")
