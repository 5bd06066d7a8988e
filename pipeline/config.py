"""Typed, validated configuration.

Defaults live in ``conf/defaults/<section>.yaml`` (one file per section, so each stage owns its
file); a user file given with ``--config`` is deep-merged on top, then ``--set a.b=value``
overrides. The merged mapping is turned into the ``PipelineConfig`` dataclass tree: unknown keys
and wrong types raise ``ValueError`` naming the key and what to do, on the driver, before any task.

Stage sections register themselves with :func:`register_section` from their own module, so a new
stage adds a dataclass and a YAML file without touching this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml


def _find_repo_root() -> Path:
    """The folder holding ``conf/`` and ``models/``: beside the code; when the code is imported from
    the ``--py-files`` zip (``make submit``) that is no folder, so ``$DOTS_HOME``, then
    ``./dots_data`` (the same zip, shipped with ``--archives ...#dots_data`` and unpacked in the
    working directory of the Python workers / a cluster-mode driver), then the working directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "conf").is_dir():
        return here
    for c in (os.environ.get("DOTS_HOME"), "dots_data", "."):
        if c and (Path(c) / "conf").is_dir():
            return Path(c).resolve()
    return here


REPO_ROOT = _find_repo_root()
DEFAULTS_DIR = REPO_ROOT / "conf" / "defaults"

_SECTIONS: dict[str, type] = {}


def register_section(name: str):
    """Class decorator: make ``cls`` the typed config of section ``name``."""

    def wrap(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"config section {name!r} must be a dataclass")
        _SECTIONS[name] = cls
        return cls

    return wrap


def _import_sections() -> None:
    # Each import registers one section; kept explicit so a missing module fails loudly.
    import importlib

    for mod in (
        "pipeline.spark_conf",
        "pipeline.prepare.config",
        "pipeline.clean.config",
        "pipeline.dedup.config",
        "pipeline.filter.config",
        "pipeline.balance.config",
        "pipeline.tokenize.config",
        "pipeline.storage.config",
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # only tolerate the section module itself missing
            if e.name != mod:
                raise


@dataclasses.dataclass
class PipelineConfig:
    """Root of the config tree: a global seed plus one typed object per registered section."""

    seed: int = 0
    sections: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed}
        for k, v in sorted(self.sections.items()):
            out[k] = dataclasses.asdict(v)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(items: list[str] | None) -> dict:
    """``["a.b=3", "c=[1,2]"]`` -> nested dict; values parsed as YAML scalars/lists."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key.path=value, e.g. prepare.lang_threshold=0.7")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def _check_type(path: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(path, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{path}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_check_type(f"{path}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _check_type(f"{path}.{k}", v, vt) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def build_dataclass(cls: type, data: dict | None, path: str = "") -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys and wrong types with a clear message."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(f'{path}.{u}'.lstrip('.') for u in unknown)}; "
            f"valid keys under {path or 'the root'}: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _check_type(f"{path}.{k}".lstrip("."), v, hints[k]) for k, v in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"config file {p} does not exist; pass an existing YAML file to --config")
    with p.open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping at the top level")
    return data


def default_mapping(defaults_dir: Path = DEFAULTS_DIR) -> dict:
    """The defaults: ``conf/defaults/<section>.yaml`` under key ``<section>``; ``root.yaml`` at top."""
    if not Path(defaults_dir).is_dir():
        raise ValueError(
            f"config defaults folder {defaults_dir} does not exist; run from the repository or set "
            "DOTS_HOME to a folder holding conf/ (make package puts a copy in dist/conf)"
        )
    out: dict = {}
    for f in sorted(Path(defaults_dir).glob("*.yaml")):
        data = load_yaml(f)
        if f.stem == "root":
            out = deep_merge(out, data)
        else:
            out[f.stem] = deep_merge(out.get(f.stem, {}), data)
    return out


def load_config(
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    defaults_dir: Path = DEFAULTS_DIR,
) -> PipelineConfig:
    """Resolve defaults + user file + ``--set`` overrides into a validated :class:`PipelineConfig`."""
    _import_sections()
    data = default_mapping(defaults_dir)
    if config_file:
        data = deep_merge(data, load_yaml(config_file))
    data = deep_merge(data, parse_set(overrides))
    seed = _check_type("seed", data.pop("seed", 0), int)
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ValueError(
            f"unknown config section(s) {unknown}; known sections: {sorted(_SECTIONS)} and 'seed'"
        )
    sections = {name: build_dataclass(cls, data.get(name), name) for name, cls in _SECTIONS.items()}
    return PipelineConfig(seed=seed, sections=sections)
