"""Config section ``dedup`` (defaults in ``conf/defaults/dedup.yaml``)."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section

SCHEMES = ("affine64", "affine32", "legacy")


@register_section("dedup")
@dataclasses.dataclass
class DedupConfig:
    """MinHash-LSH near dedup as in the dots.llm1 report: 5-gram shingles of normalized text,
    2048 permutations in 128 bands of 16 rows, connected components, one survivor per component."""

    jieba_langs: list[str] = dataclasses.field(default_factory=lambda: ["zh"])
    jieba_hmm: bool = False
    shingle_size: int = 5
    num_perm: int = 2048
    bands: int = 128
    rows: int = 16
    # datasketch permutation scheme: affine64 (64-bit shingle hash and permutations), affine32,
    # legacy (datasketch < 2.0: mod 2^61-1). Signatures equal datasketch.MinHash(num_perm,
    # seed=perm_seed, scheme=scheme) fed the UTF-8 shingles.
    scheme: str = "affine64"
    perm_seed: int = 1
    # Verification: drop candidate edges whose true shingle Jaccard is below the threshold.
    verify: bool = False
    verify_threshold: float = 0.8
    # Connected components (large-star / small-star): rounds before giving up, and the
    # partitions used by each round.
    max_iterations: int = 60
    cc_partitions: int | None = None
    # LSH buckets: shuffle partitions of the (key, nid) pairs; null = enough partitions for about
    # pairs_per_partition pairs each (16 bytes a pair, sorted in one Python worker), and at least
    # spark.sql.shuffle.partitions.
    bucket_partitions: int | None = None
    pairs_per_partition: int = 4_000_000
    num_files: int | None = None

    def validate(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"dedup.scheme={self.scheme!r}: choose one of {', '.join(SCHEMES)}")
        if self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"dedup.bands * dedup.rows ({self.bands} * {self.rows}) must equal dedup.num_perm "
                f"({self.num_perm}), e.g. 128 bands x 16 rows = 2048"
            )
        if self.shingle_size < 1:
            raise ValueError("dedup.shingle_size must be >= 1 (5 in dots.llm1)")
        if not 0.0 < self.verify_threshold <= 1.0:
            raise ValueError("dedup.verify_threshold must be in (0, 1], e.g. 0.8")
        if self.pairs_per_partition < 1 or (
            self.bucket_partitions is not None and self.bucket_partitions < 1
        ):
            raise ValueError("dedup.pairs_per_partition and dedup.bucket_partitions must be >= 1")
        if self.max_iterations < 1:
            raise ValueError("dedup.max_iterations must be >= 1")
