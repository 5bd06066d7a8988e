"""MoE model and training configuration, loaded from ``conf/moe/<name>.yaml``.

The YAML has two sections: ``model`` (:class:`MoEConfig`, the architecture) and ``train``
(:class:`TrainConfig`, optimisation and data). Unknown keys raise ``ValueError`` naming the valid
ones, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


@dataclasses.dataclass
class MoEConfig:
    """dots.llm1 architecture (Huo et al. 2025, "dots.llm1 Technical Report"; its HF config
    ``Dots1Config``). Defaults are the full 142B-total / 14B-active model."""

    vocab_size: int = 152_064  # 0 = take it from the shards' index.json (rounded up to 128)
    hidden_size: int = 4096
    num_layers: int = 62
    num_heads: int = 32
    head_dim: int = 128
    max_seq_len: int = 8192
    rope_theta: float = 1e7
    norm_eps: float = 1e-5
    # FFN: the first `first_k_dense` layers are dense SwiGLU of width `dense_ffn`, every other layer MoE.
    first_k_dense: int = 1
    dense_ffn: int = 10944
    num_experts: int = 128
    top_k: int = 6
    expert_ffn: int = 1408
    num_shared_experts: int = 2  # fused into one SwiGLU of width num_shared_experts * expert_ffn
    route_scale: float = 2.5  # routed_scaling_factor: applied to the renormalised routed weights only
    # Auxiliary-loss-free balancing (Wang et al. 2024, DeepSeek-V3 sec. 2.1.2): bias update speed.
    bias_update_rate: float = 1e-3
    # Complementary sequence-wise balance loss (DeepSeek-V3 eq. 17-20); 0 disables it.
    balance_loss_alpha: float = 1e-4
    init_std: float = 0.006
    tie_embeddings: bool = False

    def validate(self) -> None:
        if self.num_layers < 1 or self.hidden_size < 1 or self.num_heads < 1 or self.head_dim % 2:
            raise ValueError("model: num_layers, hidden_size, num_heads >= 1 and an even head_dim needed")
        if not 0 <= self.first_k_dense <= self.num_layers:
            raise ValueError(f"model.first_k_dense={self.first_k_dense} must be within [0, num_layers]")
        if self.num_layers > self.first_k_dense and not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"model.top_k={self.top_k} must be within [1, num_experts={self.num_experts}]")
        if self.vocab_size < 0:
            raise ValueError("model.vocab_size must be >= 0 (0 = from the shards' index.json)")


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and data. dots.llm1 used AdamW (0.9, 0.95), weight decay 0.1, clip 1.0 and a
    warmup-stable-decay schedule; the small configs scale lr and batch down."""

    seq_len: int = 2048
    micro_batch: int = 4  # sequences per rank per micro step
    grad_accum: int = 1  # micro steps per optimizer step
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # lr at the end of the decay, relative to lr
    warmup_steps: int = 100
    decay_frac: float = 0.2  # last fraction of the steps decays linearly (WSD; Hu et al. 2024, MiniCPM)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip: float = 1.0
    seed: int = 0
    log_every: int = 1
    ckpt_every: int = 100  # 0 = only at the end (or --stop-at); < 0 = never (benchmarks)
    keep_ckpts: int = 2
    num_workers: int = 0  # loader worker processes per rank
    shuffle: bool = True
    bf16: bool = True  # autocast to bf16 on CUDA (CPU runs in fp32)
    peak_tflops: float = 0.0  # 0 = guess from the GPU name (H100/H200 bf16 dense: 989)

    def validate(self) -> None:
        if self.seq_len < 2 or self.micro_batch < 1 or self.grad_accum < 1:
            raise ValueError("train: seq_len >= 2, micro_batch >= 1 and grad_accum >= 1 needed")
        if not 0 <= self.decay_frac <= 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("train.decay_frac and train.min_lr_ratio must be within [0, 1]")


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    data = data or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    obj = cls(**data)
    for f in dataclasses.fields(cls):  # YAML gives ints for floats (1e7 parses as str in YAML 1.1)
        v = getattr(obj, f.name)
        if f.type in ("float", float) and isinstance(v, (int, str)) and not isinstance(v, bool):
            setattr(obj, f.name, float(v))
    obj.validate()
    return obj


def load_moe_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> tuple[MoEConfig, TrainConfig]:
    """Read ``model`` and ``train`` sections of a YAML file; ``overrides`` wins per key."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"model config {p} does not exist; pick one of conf/moe/*.yaml")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {unknown}; expected 'model' and 'train'")
    overrides = overrides or {}
    model = _build(MoEConfig, {**(data.get("model") or {}), **overrides.get("model", {})}, f"{p}:model")
    train = _build(TrainConfig, {**(data.get("train") or {}), **overrides.get("train", {})}, f"{p}:train")
    return model, train
