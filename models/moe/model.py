"""dots.llm1-style MoE transformer (Huo et al. 2025, "dots.llm1 Technical Report").

Shape legend (torchtitan style: a tensor's name ends with its shape):
    B batch            S sequence length     T tokens in the batch (B*S)
    D model width      H attention heads     C head dim
    V vocabulary       E routed experts      K experts chosen per token (top-k)
    M routed rows (T*K token-expert pairs, sorted by expert)
    F dense / shared FFN width

Architecture: pre-norm RMSNorm (eps 1e-5); multi-head attention with RMSNorm on each head's q and k
before RoPE (theta 1e7; the QK-norm stabilises attention logits, Dehghani et al. 2023); the first
``first_k_dense`` layers use a dense SwiGLU FFN, the others MoE: ``num_experts`` routed SwiGLU experts
(top-``top_k`` sigmoid routing, DeepSeek-V3 style) plus the shared experts as one wider SwiGLU.
Untied embeddings, normal(0, 0.006) init.

Balancing (DeepSeek-V3, sec. 2.1.2 and eq. 17-20):
* auxiliary-loss-free: a per-expert bias is added to the scores only to *choose* experts. The
  trainer calls :meth:`MoETransformer.update_expert_bias` after each optimizer step:
  ``bias += gamma * sign(mean_load - load)``. Loads are only recorded in training mode, and the bias
  buffer is never touched inside ``forward``, so evaluation cannot change the model.
* a small sequence-wise balance loss ``alpha * sum_i f_i * P_i`` returned next to the LM loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from models.moe.config import MoEConfig
from models.moe.experts import grouped_mlp


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019), computed in fp32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


def rope_cos_sin(seq_len: int, head_dim: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables [S, C] (Su et al. 2021), rotate-half layout as in Qwen2/dots1 HF code."""
    inv_freq_C2 = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    angles_SC2 = torch.outer(torch.arange(seq_len, dtype=torch.float64, device=device), inv_freq_C2)
    angles_SC = torch.cat([angles_SC2, angles_SC2], dim=-1)
    return angles_SC.cos().float(), angles_SC.sin().float()


def apply_rope(x_BHSC: torch.Tensor, cos_SC: torch.Tensor, sin_SC: torch.Tensor) -> torch.Tensor:
    half = x_BHSC.shape[-1] // 2
    x1, x2 = x_BHSC[..., :half], x_BHSC[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x_BHSC.float() * cos_SC + rotated.float() * sin_SC).to(x_BHSC.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        inner = cfg.num_heads * cfg.head_dim
        self.wq = nn.Linear(cfg.hidden_size, inner, bias=False)
        self.wk = nn.Linear(cfg.hidden_size, inner, bias=False)
        self.wv = nn.Linear(cfg.hidden_size, inner, bias=False)
        self.wo = nn.Linear(inner, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)

    def forward(self, x_BSD: torch.Tensor, cos_SC: torch.Tensor, sin_SC: torch.Tensor) -> torch.Tensor:
        b, s, _ = x_BSD.shape
        q_BHSC = self.q_norm(self.wq(x_BSD).view(b, s, self.n_heads, self.head_dim)).transpose(1, 2)
        k_BHSC = self.k_norm(self.wk(x_BSD).view(b, s, self.n_heads, self.head_dim)).transpose(1, 2)
        v_BHSC = self.wv(x_BSD).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        q_BHSC, k_BHSC = apply_rope(q_BHSC, cos_SC, sin_SC), apply_rope(k_BHSC, cos_SC, sin_SC)
        # Causal over the packed sequence (documents are separated by EOS, not masked apart).
        o_BHSC = F.scaled_dot_product_attention(q_BHSC, k_BHSC, v_BHSC, is_causal=True)
        return self.wo(o_BHSC.transpose(1, 2).reshape(b, s, self.n_heads * self.head_dim))


class SwiGLU(nn.Module):
    """Dense SwiGLU FFN (Shazeer 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def route(
    x_TD: torch.Tensor, router_ED: torch.Tensor, expert_bias_E: torch.Tensor, top_k: int, route_scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid top-k routing in fp32 (DeepSeek-V3 eq. 13-16, dots1 ``noaux_tc`` with one group).

    Returns (weights_TK, expert_ids_TK, scores_TE): the bias only changes which experts are chosen;
    the weights are the chosen *unbiased* scores renormalised to sum 1, times ``route_scale``.
    """
    device_type = x_TD.device.type
    with torch.autocast(device_type, enabled=False):  # routing decisions are precision-sensitive
        scores_TE = torch.sigmoid(F.linear(x_TD.float(), router_ED.float()))
        _, expert_ids_TK = torch.topk(scores_TE + expert_bias_E.float(), top_k, dim=-1)
        chosen_TK = scores_TE.gather(-1, expert_ids_TK)
        weights_TK = chosen_TK / chosen_TK.sum(-1, keepdim=True) * route_scale
    return weights_TK, expert_ids_TK, scores_TE


def sequence_balance_loss(scores_BSE: torch.Tensor, expert_ids_BSK: torch.Tensor, alpha: float) -> torch.Tensor:
    """DeepSeek-V3 eq. 17-20: alpha * sum_i f_i P_i per sequence, averaged over the batch.

    f_i = E / (K S) * #{t : expert i in top-k(t)}   (not differentiable)
    P_i = 1/S * sum_t s_it / sum_j s_jt              (normalised affinities)
    """
    _, s, e = scores_BSE.shape
    k = expert_ids_BSK.shape[-1]
    ids_BX = expert_ids_BSK.reshape(scores_BSE.shape[0], s * k)
    counts_BE = torch.zeros(ids_BX.shape[0], e, device=scores_BSE.device, dtype=torch.float32)
    counts_BE.scatter_add_(1, ids_BX, torch.ones(ids_BX.shape, device=ids_BX.device, dtype=torch.float32))
    f_BE = counts_BE * (e / (k * s))
    p_BE = (scores_BSE / scores_BSE.sum(-1, keepdim=True)).mean(1)
    return alpha * (f_BE * p_BE).sum(-1).mean()


class MoE(nn.Module):
    """Routed experts (weights stacked for grouped GEMMs) + shared experts + router."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.num_experts, self.top_k, self.route_scale = cfg.num_experts, cfg.top_k, cfg.route_scale
        self.alpha = cfg.balance_loss_alpha
        d, i, e = cfg.hidden_size, cfg.expert_ffn, cfg.num_experts
        self.router = nn.Parameter(torch.empty(e, d))
        self.w13 = nn.Parameter(torch.empty(e, 2 * i, d))  # rows [0, I) gate, [I, 2I) up
        self.w2 = nn.Parameter(torch.empty(e, d, i))
        self.shared = SwiGLU(d, cfg.num_shared_experts * i) if cfg.num_shared_experts else None
        # The balancing bias is a persistent buffer (saved with checkpoints); updated by the trainer only.
        self.register_buffer("expert_bias", torch.zeros(e), persistent=True)
        # Loads seen since the last bias update (training mode only); not state, never saved.
        self.load_since_update: torch.Tensor | None = None
        self.last_load: torch.Tensor | None = None  # load of the most recent forward, for logging

    def forward(self, x_BSD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, d = x_BSD.shape
        x_TD = x_BSD.reshape(b * s, d)
        weights_TK, expert_ids_TK, scores_TE = route(
            x_TD, self.router, self.expert_bias, self.top_k, self.route_scale
        )
        # Dispatch: sort the T*K (token, expert) pairs by expert so each expert sees contiguous rows.
        expert_ids_M = expert_ids_TK.reshape(-1)
        order_M = torch.argsort(expert_ids_M, stable=True)
        token_of_M = order_M // self.top_k
        load_E = torch.bincount(expert_ids_M, minlength=self.num_experts)
        offsets_E = torch.cumsum(load_E, 0).to(torch.int32)
        y_MD = grouped_mlp(x_TD[token_of_M], self.w13, self.w2, offsets_E)
        y_MD = y_MD * weights_TK.reshape(-1)[order_M].unsqueeze(-1).to(y_MD.dtype)
        # Combine the K expert outputs of each token in fp32 (bf16 sums lose the small contributions).
        out_TD = torch.zeros(b * s, d, dtype=torch.float32, device=x_TD.device).index_add_(0, token_of_M, y_MD.float())
        if self.shared is not None:
            out_TD = out_TD + self.shared(x_TD).float()
        if self.training:
            load = load_E.detach()
            self.last_load = load
            self.load_since_update = load if self.load_since_update is None else self.load_since_update + load
        aux = x_BSD.new_zeros((), dtype=torch.float32)
        if self.training and self.alpha > 0:
            aux = sequence_balance_loss(
                scores_TE.view(b, s, -1), expert_ids_TK.view(b, s, -1), self.alpha
            )
        return out_TD.to(x_BSD.dtype).view(b, s, d), aux

    @torch.no_grad()
    def update_bias(self, rate: float) -> torch.Tensor | None:
        """bias += rate * sign(mean load - load) over the loads since the last call (all ranks)."""
        load = self.load_since_update
        self.load_since_update = None
        if load is None:
            return None
        load = load.float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(load)  # every rank must keep the same bias
        self.expert_bias.add_(rate * torch.sign(load.mean() - load))
        return load


class Block(nn.Module):
    def __init__(self, cfg: MoEConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.is_moe = layer >= cfg.first_k_dense
        self.ffn = MoE(cfg) if self.is_moe else SwiGLU(cfg.hidden_size, cfg.dense_ffn)

    def forward(self, x_BSD, cos_SC, sin_SC) -> tuple[torch.Tensor, torch.Tensor]:
        x_BSD = x_BSD + self.attn(self.attn_norm(x_BSD), cos_SC, sin_SC)
        if self.is_moe:
            h_BSD, aux = self.ffn(self.ffn_norm(x_BSD))
        else:
            h_BSD, aux = self.ffn(self.ffn_norm(x_BSD)), x_BSD.new_zeros((), dtype=torch.float32)
        return x_BSD + h_BSD, aux


class MoETransformer(nn.Module):
    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 1:
            raise ValueError("MoEConfig.vocab_size is 0: resolve it from the shards' index.json first")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos_SC, sin_SC = rope_cos_sin(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos_SC, persistent=False)
        self.register_buffer("rope_sin", sin_SC, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """normal(0, init_std) for every matrix (dots1 ``initializer_range`` 0.006), ones for norms."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, std)
        for m in self.moe_layers():
            m.expert_bias.zero_()
        if self.rope_cos.device.type != "meta":
            cos_SC, sin_SC = rope_cos_sin(self.cfg.max_seq_len, self.cfg.head_dim, self.cfg.rope_theta, self.rope_cos.device)
            self.rope_cos.copy_(cos_SC)
            self.rope_sin.copy_(sin_SC)

    def moe_layers(self) -> list[MoE]:
        return [blk.ffn for blk in self.layers if blk.is_moe]

    def forward(
        self, tokens_BS: torch.Tensor, targets_BS: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits_BSV, aux) without targets, else (mean cross-entropy, aux balance loss)."""
        s = tokens_BS.shape[1]
        if s > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {s} > model.max_seq_len={self.cfg.max_seq_len}")
        cos_SC, sin_SC = self.rope_cos[:s], self.rope_sin[:s]
        x_BSD = self.embed(tokens_BS)
        aux = x_BSD.new_zeros((), dtype=torch.float32)
        for blk in self.layers:
            x_BSD, layer_aux = blk(x_BSD, cos_SC, sin_SC)
            aux = aux + layer_aux
        logits_BSV = self.lm_head(self.norm(x_BSD))
        if targets_BS is None:
            return logits_BSV, aux
        loss = F.cross_entropy(logits_BSV.float().view(-1, logits_BSV.shape[-1]), targets_BS.reshape(-1))
        return loss, aux

    @torch.no_grad()
    def update_expert_bias(self) -> list[torch.Tensor]:
        """Loss-free balancing step; call after ``optimizer.step()``. Returns each layer's load."""
        loads = []
        for m in self.moe_layers():
            load = m.update_bias(self.cfg.bias_update_rate)
            if load is not None:
                loads.append(load)
        return loads


def count_params(cfg: MoEConfig) -> dict[str, int]:
    """Total and active (per token) parameter counts, computed on the meta device (no memory)."""
    with torch.device("meta"):
        model = MoETransformer(cfg)
    total = sum(p.numel() for p in model.parameters())
    embed = model.embed.weight.numel()
    routed = sum(m.w13.numel() + m.w2.numel() for m in model.moe_layers())
    per_expert_share = cfg.top_k / cfg.num_experts if cfg.num_experts else 0.0
    active = total - routed + round(routed * per_expert_share)
    return {"total": total, "active": active, "embedding": embed, "routed_experts": routed}


def flops_per_token(cfg: MoEConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 * active non-embedding params + attention (PaLM, Chowdhery et al.
    2022, appendix B: 6N + 12 L H C S, counting the full S x S score matrix)."""
    counts = count_params(cfg)
    n = counts["active"] - counts["embedding"]
    return 6.0 * n + 12.0 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq_len


def peak_flops(device: torch.device, override_tflops: float = 0.0) -> float | None:
    """Dense bf16 peak of the GPU (vendor datasheets), or None when unknown (CPU)."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in (("H100", 989.0), ("H200", 989.0), ("H800", 989.0), ("A100", 312.0), ("L40", 181.0)):
        if key in name:
            return tflops * 1e12
    return None


__all__ = ["MoETransformer", "MoE", "route", "sequence_balance_loss", "count_params", "flops_per_token"]
