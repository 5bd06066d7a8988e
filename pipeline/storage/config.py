"""Config section ``storage`` (defaults in conf/defaults/storage.yaml).

Credentials, endpoints and regions are not here: they come from the standard AWS variables and
files (see :mod:`pipeline.storage.s3` and docs/OBJECT_STORAGE.md)."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section


@register_section("storage")
@dataclasses.dataclass
class StorageConfig:
    # Where Spark's own intermediate tables go (clean's line counts, dedup's edges) when the output
    # is in an object store, which Spark's Hadoop writer cannot reach without the s3a jars. Empty:
    # a temporary folder on the driver's disk, valid with a local master only; on a cluster give a
    # folder every node sees (hdfs://..., or a shared mount).
    scratch_dir: str = ""

    def validate(self) -> None:
        from pipeline.storage.paths import HADOOP, LOCAL, kind

        if self.scratch_dir and kind(self.scratch_dir) not in (LOCAL, HADOOP):
            raise ValueError(
                f"storage.scratch_dir={self.scratch_dir!r} must be a folder Spark itself can write "
                "(a local/shared path or hdfs://), not an object store"
            )
