"""dots1 MoE model: routing math, balance loss, bias update, eval invariance, parameter counts."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from models.moe.config import MoEConfig, load_moe_config
from models.moe.model import MoE, MoETransformer, count_params, route, sequence_balance_loss

torch.set_num_threads(1)


def tiny_cfg(**kw) -> MoEConfig:
    model, _ = load_moe_config("conf/moe/tiny.yaml")
    return dataclasses.replace(model, vocab_size=256, **kw)


def plain_route(x, router, bias, k, scale):
    """Token by token, in float64, the way DeepSeek-V3 eq. 13-16 reads."""
    weights, ids = [], []
    for t in range(x.shape[0]):
        s = [1.0 / (1.0 + torch.exp(-(x[t].double() @ router[e].double())).item()) for e in range(router.shape[0])]
        biased = [s[e] + bias[e].item() for e in range(len(s))]
        chosen = sorted(range(len(s)), key=lambda e: -biased[e])[:k]
        total = sum(s[e] for e in chosen)
        ids.append(chosen)
        weights.append([s[e] / total * scale for e in chosen])
    return torch.tensor(weights, dtype=torch.float64), torch.tensor(ids)


def test_routing_matches_plain_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 16, generator=g)
    router = torch.randn(8, 16, generator=g) * 0.3
    bias = torch.randn(8, generator=g) * 0.5  # large enough to change choices
    w, ids, scores = route(x, router, bias, 3, 2.5)
    w_ref, ids_ref = plain_route(x, router, bias, 3, 2.5)
    assert torch.equal(ids, ids_ref)
    torch.testing.assert_close(w.double(), w_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w.sum(-1), torch.full((20,), 2.5))
    # the bias changes which experts are picked, never the weights' scores
    _, ids_nobias, _ = route(x, router, torch.zeros(8), 3, 2.5)
    assert not torch.equal(ids, ids_nobias)
    assert scores.dtype == torch.float32


def test_routing_is_fp32_under_autocast():
    x = torch.randn(5, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w, _, scores = route(x, torch.randn(4, 16), torch.zeros(4), 2, 2.5)
    assert w.dtype == torch.float32 and scores.dtype == torch.float32


def test_balance_loss_formula():
    g = torch.Generator().manual_seed(1)
    b, s, e, k, alpha = 2, 5, 4, 2, 0.1
    scores = torch.rand(b, s, e, generator=g)
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(b * s)]).view(b, s, k)
    got = sequence_balance_loss(scores, ids, alpha)
    want = 0.0
    for bi in range(b):
        total = 0.0
        for i in range(e):
            f_i = e / (k * s) * sum(int(i in ids[bi, t].tolist()) for t in range(s))
            p_i = sum(scores[bi, t, i].item() / scores[bi, t].sum().item() for t in range(s)) / s
            total += f_i * p_i
        want += alpha * total / b
    assert abs(got.item() - want) < 1e-6
    # perfectly uniform routing gives alpha * 1 (the minimum of the balance term)
    uniform = torch.ones(1, 4, 4)
    ids_u = torch.tensor([[[0, 1], [2, 3], [0, 1], [2, 3]]])
    assert abs(sequence_balance_loss(uniform, ids_u, 1.0).item() - 1.0) < 1e-6


def test_bias_update_direction_and_eval_invariance():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    moe = MoE(cfg)
    torch.nn.init.normal_(moe.router, std=0.02)
    torch.nn.init.normal_(moe.w13, std=0.02)
    torch.nn.init.normal_(moe.w2, std=0.02)
    with torch.no_grad():
        moe.router[3] += 0.5  # expert 3 is over-loaded: tokens along +x prefer it
    x = torch.randn(2, 16, cfg.hidden_size) + 1.0
    # eval: no load is recorded, the bias never moves
    moe.eval()
    moe(x)
    assert moe.load_since_update is None and moe.update_bias(0.1) is None
    assert torch.all(moe.expert_bias == 0)
    # training: forward records loads but does not touch the bias; the update does
    moe.train()
    moe(x)
    assert torch.all(moe.expert_bias == 0)
    load = moe.load_since_update.clone().float()
    moe.update_bias(0.01)
    expected = 0.01 * torch.sign(load.mean() - load)
    torch.testing.assert_close(moe.expert_bias, expected)
    assert moe.expert_bias[3] < 0  # the busiest expert is pushed down
    assert moe.load_since_update is None


def test_model_eval_forward_leaves_state_unchanged():
    model = MoETransformer(tiny_cfg())
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        out1, aux1 = model(tokens)
        out2, _ = model(tokens)
    assert torch.equal(out1, out2) and aux1.item() == 0.0
    model.update_expert_bias()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_moe_layer_equals_dense_per_token_computation():
    cfg = tiny_cfg()
    torch.manual_seed(3)
    moe = MoE(cfg).double()
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.1)
    moe.eval()
    x = torch.randn(1, 6, cfg.hidden_size, dtype=torch.float64)
    out, _ = moe(x)
    inter = cfg.expert_ffn
    w, ids, _ = route(x[0], moe.router, moe.expert_bias, cfg.top_k, cfg.route_scale)
    for t in range(6):
        y = moe.shared(x[0, t])
        for j in range(cfg.top_k):
            e = ids[t, j]
            h = F.silu(moe.w13[e, :inter] @ x[0, t]) * (moe.w13[e, inter:] @ x[0, t])
            y = y + w[t, j].double() * (moe.w2[e] @ h)
        torch.testing.assert_close(out[0, t], y)


def test_full_config_parameter_counts_on_meta_device():
    model, _ = load_moe_config("conf/moe/full.yaml")
    counts = count_params(model)
    # dots.llm1 report: 142B total, 14B activated per token
    assert 141.5e9 < counts["total"] < 143.5e9, counts
    assert 13.5e9 < counts["active"] < 14.5e9, counts
    with torch.device("meta"):
        m = MoETransformer(model)
    assert len(m.moe_layers()) == 61 and not m.layers[0].is_moe
    assert m.layers[1].ffn.w13.shape == (128, 2 * 1408, 4096) and m.layers[1].ffn.w2.shape == (128, 4096, 1408)
    assert m.layers[1].ffn.shared.w1.weight.shape == (2816, 4096)
    assert m.layers[0].ffn.w1.weight.shape == (10944, 4096)
    assert m.lm_head.weight is not m.embed.weight


def test_init_std_and_config_validation():
    cfg = dataclasses.replace(tiny_cfg(), hidden_size=256, init_std=0.006)
    model = MoETransformer(cfg)
    assert abs(model.layers[1].ffn.w13.std().item() - 0.006) < 5e-4
    assert torch.all(model.norm.weight == 1)
    with pytest.raises(ValueError, match="top_k"):
        load_moe_config("conf/moe/tiny.yaml", {"model": {"top_k": 99}})
    with pytest.raises(ValueError, match="unknown key"):
        load_moe_config("conf/moe/tiny.yaml", {"train": {"lr_max": 1}})


def test_loss_and_gradients_flow_to_experts_and_router():
    model = MoETransformer(tiny_cfg())
    model.train()
    tokens = torch.randint(0, 256, (2, 33))
    loss, aux = model(tokens[:, :-1], tokens[:, 1:])
    assert aux.item() > 0
    (loss + aux).backward()
    moe = model.layers[1].ffn
    assert moe.w13.grad.abs().sum() > 0 and moe.router.grad.abs().sum() > 0
    assert moe.expert_bias.grad is None if hasattr(moe.expert_bias, "grad") else True
