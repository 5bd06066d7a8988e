"""dots.llm1-style Mixture-of-Experts transformer: config, model, expert GEMMs, data adapter.

``models.moe.experts.grouped_mlp`` is the one entry point for expert computation; the fused Triton
kernels live in ``models.moe.kernels`` (another area) and are picked by it on CUDA.
"""
