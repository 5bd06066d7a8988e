"""The category taxonomy (``conf/taxonomy.yaml``): leaves with ids, names, domains and balance weights.

A leaf's id is its position in the file (domains in order, leaves in order), so ids are stable as long
as the file is only appended to. The model's ``config.json`` stores the names it was trained with and
the loader checks them against the taxonomy, so a reordered file fails loudly instead of silently
relabelling documents.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import yaml

from pipeline.config import REPO_ROOT  # the checkout, or ./dots_data under spark-submit

DEFAULT_TAXONOMY = REPO_ROOT / "conf" / "taxonomy.yaml"
DEFAULT_KEYWORDS = REPO_ROOT / "conf" / "category_keywords.yaml"


@dataclasses.dataclass(frozen=True)
class Leaf:
    id: int
    en: str
    zh: str
    desc: str
    weight: float
    domain: int
    domain_en: str
    domain_zh: str


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    leaves: tuple[Leaf, ...]
    domains: tuple[tuple[str, str], ...]  # (English, Chinese) per domain id
    version: int = 1
    path: str = ""

    def __len__(self) -> int:
        return len(self.leaves)

    def names(self) -> list[str]:
        """English leaf names in id order."""
        return [leaf.en for leaf in self.leaves]

    def weights(self) -> list[float]:
        return [leaf.weight for leaf in self.leaves]

    def domain_of(self, leaf_id: int) -> int:
        return self.leaves[leaf_id].domain

    def id_of(self, value: int | str) -> int:
        """Leaf id from an id (int or digit string) or an English/Chinese name (case-insensitive)."""
        if isinstance(value, bool):
            raise ValueError(f"category {value!r}: expected a leaf id 0..{len(self) - 1} or a leaf name")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            i = int(value)
            if 0 <= i < len(self):
                return i
            raise ValueError(f"category id {i} is outside 0..{len(self) - 1} of taxonomy {self.path}")
        if isinstance(value, str):
            idx = _name_index(self)
            key = value.strip().casefold()
            if key in idx:
                return idx[key]
            raise ValueError(
                f"category {value!r} is not a leaf of {self.path}; use an English leaf name "
                f"(e.g. {self.leaves[0].en!r}) or an id"
            )
        raise ValueError(f"category {value!r}: expected a leaf id or name")


@functools.lru_cache(maxsize=8)
def _name_index(tax: Taxonomy) -> dict[str, int]:
    out: dict[str, int] = {}
    for leaf in tax.leaves:
        out[leaf.en.casefold()] = leaf.id
        out[leaf.zh.casefold()] = leaf.id
    return out


def parse_taxonomy(data: dict, path: str = "<memory>") -> Taxonomy:
    """Validate the YAML mapping and build a :class:`Taxonomy` (errors name the offending entry)."""
    if not isinstance(data, dict) or not isinstance(data.get("domains"), list) or not data["domains"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'domains' list")
    leaves: list[Leaf] = []
    domains: list[tuple[str, str]] = []
    seen_en: set[str] = set()
    seen_zh: set[str] = set()
    for d_i, dom in enumerate(data["domains"]):
        if not isinstance(dom, dict) or not dom.get("en") or not dom.get("zh") or not dom.get("leaves"):
            raise ValueError(f"{path}: domain #{d_i} needs 'en', 'zh' and a non-empty 'leaves' list")
        domains.append((str(dom["en"]), str(dom["zh"])))
        for leaf in dom["leaves"]:
            where = f"{path}: leaf {leaf.get('en', '?')!r} of domain {dom['en']!r}"
            for key in ("en", "zh", "desc"):
                if not isinstance(leaf.get(key), str) or not leaf[key].strip():
                    raise ValueError(f"{where}: '{key}' must be a non-empty string")
            w = leaf.get("weight")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise ValueError(f"{where}: 'weight' must be a number > 0 (got {w!r})")
            en, zh = leaf["en"].strip(), leaf["zh"].strip()
            if en.casefold() in seen_en or zh.casefold() in seen_zh:
                raise ValueError(f"{where}: duplicate leaf name; names must be unique")
            seen_en.add(en.casefold())
            seen_zh.add(zh.casefold())
            leaves.append(Leaf(len(leaves), en, zh, leaf["desc"].strip(), float(w), d_i, *domains[-1]))
    return Taxonomy(tuple(leaves), tuple(domains), int(data.get("version", 1)), path)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> Taxonomy:
    p = Path(path)
    if not p.exists():
        raise ValueError(
            f"taxonomy file {p} does not exist; pass an existing YAML (default {DEFAULT_TAXONOMY})"
        )
    with p.open(encoding="utf-8") as f:
        return parse_taxonomy(yaml.safe_load(f), str(p))


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load (and cache) a taxonomy; ``None`` = ``conf/taxonomy.yaml``. Relative paths: repo root first."""
    p = Path(path) if path else DEFAULT_TAXONOMY
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    return _load(str(p.resolve()))


def load_keywords(path: str | Path | None, taxonomy: Taxonomy) -> dict[str, dict[str, list[str]]]:
    """Weak-label keyword lists keyed by English leaf name; every key must be a leaf of ``taxonomy``."""
    p = Path(path) if path else DEFAULT_KEYWORDS
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    if not p.exists():
        raise ValueError(f"keyword file {p} does not exist (default {DEFAULT_KEYWORDS})")
    with p.open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    names = set(taxonomy.names())
    out: dict[str, dict[str, list[str]]] = {}
    for leaf, langs in data.items():
        if str(leaf).startswith("_"):  # settings such as _thresholds, read by weak_labels.load_config
            continue
        if leaf not in names:
            raise ValueError(f"{p}: {leaf!r} is not an English leaf name of {taxonomy.path}")
        if not isinstance(langs, dict):
            raise ValueError(f"{p}: {leaf!r} must map languages (en, zh, url, ...) to keyword lists")
        out[leaf] = {str(k): [str(x) for x in (v or [])] for k, v in langs.items()}
    return out
