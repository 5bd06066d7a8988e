"""Spark session settings (section ``spark``), chosen by profile from ``conf/defaults/spark.yaml``."""

from __future__ import annotations

import dataclasses

from pipeline.config import register_section


@register_section("spark")
@dataclasses.dataclass
class SparkConfig:
    """``profile`` picks one entry of ``profiles``; ``spark-submit --master`` always wins over it."""

    profile: str = "local"
    app_name: str = "dots-data"
    profiles: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.profiles and self.profile not in self.profiles:
            raise ValueError(
                f"spark.profile={self.profile!r} is not defined; choose one of {sorted(self.profiles)}"
            )

    def settings(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.profiles.get(self.profile, {}).items()}
