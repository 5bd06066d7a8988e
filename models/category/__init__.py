"""Category classifier of the ``filter`` stage: 200 taxonomy leaves (``conf/taxonomy.yaml``).

    from models.category import load, category_names
    pred = load(None, "cpu")              # the committed default artifact in models/category/
    ids, probs = pred.predict(texts)      # int64 [N] leaf ids 0..199, float32 [N] probabilities
    ids, probs = pred.predict(texts, urls=urls, titles=titles)  # with the pages' URLs and titles
    top_ids, top_probs = pred.predict_topk(texts, 5)
    pred.version                          # e.g. "category-20261206-2153ae11", recorded per row

Pretrained pieces (``config["piece_dim"] > 0``): the network also averages fine-tuned WordLlama token
embeddings (``models/category/model.py``); the artifact stores the fine-tuned table, and only the
tokenizer is read from the installed ``wordllama`` package (pinned in requirements.txt; nothing is
downloaded). ``config["piece_tokenizer_sha1"]`` must match that tokenizer file, else loading stops.

A model folder holds ``model.safetensors`` (float16 weights), ``config.json`` (hyper-parameters,
feature settings, label names, version, metrics, keyword prior) and ``MODEL_CARD.md``;
``jobs/train_category.py`` writes new ones. Features are computed on the CPU; the EmbeddingBag + linear
layer run on ``device``.

Keyword prior (``config["keyword_prior"]``, optional): the student network's logits are combined with
its weak-label teacher as ``(logits + beta * log1p(keyword_scores)) / temperature``, where
``keyword_scores`` [N, C] are the per-leaf keyword scores of the text (the keyword lists are stored in
the config, so an artifact does not change when ``conf/category_keywords.yaml`` does). A product of
experts of the classifier and its labeling functions, as in data-programming end models (Ratner et al.,
2017); ``beta`` is chosen on a dev split and ``temperature`` fitted on held-out data by the training
job. Keyword scores cross languages (English, Chinese, German lists point at the same leaf), which
the hashed n-grams of a few thousand mostly English pages cannot.

Page URL and title (optional ``urls`` / ``titles``, one per text, None entries allowed): a model with
``config["title"]`` reads ``title + "\n" + text`` (network and prior; :func:`pipeline.category.features.with_title`),
and a prior whose keyword lists hold ``url`` words adds ``url_weight`` per matching word of the URL's host
and path (hosts under the reserved ``.test`` domain give none). Without them the model reads the text
alone, as older artifacts always do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from models.category.model import FastTextClassifier, build_model, featurize
from pipeline.category.features import with_title
from pipeline.category.taxonomy import Taxonomy, load_taxonomy
from pipeline.category.weak_labels import WeakLabelConfig, WeakLabeler
from pipeline.config import REPO_ROOT

# REPO_ROOT, not this file's folder: under spark-submit the code is imported from the --py-files zip,
# and the weights are read from the unpacked copy of the project (pipeline.config.REPO_ROOT).
DEFAULT_DIR = REPO_ROOT / "models" / "category"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def category_names(taxonomy: str | Path | None = None) -> list[str]:
    """English leaf names in id order, from ``conf/taxonomy.yaml`` (or the given taxonomy file)."""
    return load_taxonomy(taxonomy).names()


class CategoryPredictor:
    """A loaded category model on one device; ``predict`` is batched, deterministic and thread-safe."""

    def __init__(
        self, model: FastTextClassifier, config: dict, device: str = "cpu", taxonomy: Taxonomy | None = None
    ) -> None:
        self.model = model.to(device).eval()
        self.config = config
        self.device = device
        self.version: str = config["version"]
        self.labels: list[str] = list(config["labels"])
        kp = config.get("keyword_prior") or {}
        self.beta = float(kp.get("beta", 0.0))
        self.temperature = float(config.get("temperature", 1.0))
        if not self.temperature > 0:
            raise ValueError(f"config temperature must be > 0, got {self.temperature}")
        self.prior_chars = int(kp.get("max_chars", config.get("max_chars", 4000)))
        self.use_title = bool(config.get("title"))
        self.labeler: WeakLabeler | None = None
        if self.beta:
            tax = taxonomy or load_taxonomy(None)
            wcfg = WeakLabelConfig(cap=int(kp.get("cap", 3)), max_chars=self.prior_chars,
                                   # not recorded: the prior scores the text only
                                   url_weight=float(kp.get("url_weight", 0.0)))
            self.labeler = WeakLabeler(tax, kp["keywords"], wcfg)

    def keyword_scores(self, texts: list[str], urls: Sequence[str | None] | None = None) -> np.ndarray:
        """float32 [N, C] keyword scores of the prior (zeros when the model has none); ``urls`` add their
        URL-word scores when the prior has URL lists."""
        if self.labeler is None:
            return np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        return self.labeler.score_matrix(texts, self.prior_chars, urls)

    def model_texts(self, texts: list[str], titles: Sequence[str | None] | None = None) -> list[str]:
        """The texts the network and the prior read: with the titles in front for a model with
        ``config["title"]``, else ``texts`` unchanged."""
        if titles is None or not self.use_title:
            return texts
        if len(titles) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(titles)} titles")
        return [with_title(t, ti) for t, ti in zip(texts, titles)]

    @torch.inference_mode()
    def network_logits(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        """float32 [N, C] logits of the network alone (no keyword prior, no temperature)."""
        out = []
        for i in range(0, len(texts), batch_size):
            feats = featurize(texts[i : i + batch_size], self.config)
            t = [torch.from_numpy(a).to(self.device, non_blocking=True) for a in feats]
            out.append(self.model(*t).float().cpu().numpy())
        if not out:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(out)

    def logits(
        self, texts: list[str], batch_size: int = 1024, urls: Sequence[str | None] | None = None,
        titles: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """float32 [N, C] final logits: ``(network + beta * log1p(keyword scores)) / temperature``."""
        texts = self.model_texts(texts, titles)
        lg = self.network_logits(texts, batch_size)
        if self.beta:
            lg = lg + np.float32(self.beta) * np.log1p(self.keyword_scores(texts, urls))
        return (lg / np.float32(self.temperature)).astype(np.float32)

    def predict_topk(
        self, texts: list[str], k: int = 5, batch_size: int = 1024, urls: Sequence[str | None] | None = None,
        titles: Sequence[str | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """int64 [N, k] leaf ids (best first) and float32 [N, k] softmax probabilities; ``urls`` and
        ``titles`` (optional, one per text) as in the module docstring."""
        lg = self.logits(texts, batch_size, urls, titles).astype(np.float64)
        lg -= lg.max(axis=1, keepdims=True)
        p = np.exp(lg)
        p /= p.sum(axis=1, keepdims=True)
        # stable sort on -p: ties resolve to the lower id, identically on every device
        top = np.argsort(-p, axis=1, kind="stable")[:, :k]
        return top.astype(np.int64), np.take_along_axis(p, top, axis=1).astype(np.float32)

    def predict(
        self, texts: list[str], batch_size: int = 1024, urls: Sequence[str | None] | None = None,
        titles: Sequence[str | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """int64 [N] leaf ids and float32 [N] their probabilities."""
        top, p = self.predict_topk(texts, 1, batch_size, urls, titles)
        return top[:, 0], p[:, 0]


def check_piece_tokenizer(config: dict, where: Path | str = "") -> None:
    """Stop when the installed WordLlama tokenizer is not the one the model was trained with."""
    import hashlib

    from pipeline.category.features import wordllama_files

    want = config.get("piece_tokenizer_sha1")
    got = hashlib.sha1(Path(wordllama_files()[0]).read_bytes()).hexdigest()
    if want != got:
        raise ValueError(
            f"model {where} was trained with WordLlama tokenizer {want}, the installed one is {got}: "
            "install the version pinned in requirements.txt (wordllama==0.4.0.post1) or retrain"
        )


def load(
    path: str | Path | None = None, device: str = "cpu", taxonomy: Taxonomy | None = None
) -> CategoryPredictor:
    """Load a model folder (``None`` = the default artifact under models/category/) onto ``device``.

    Raises ValueError when the folder is incomplete or its labels differ from the taxonomy's leaves."""
    from safetensors.torch import load_file

    d = Path(path) if path else DEFAULT_DIR
    if not d.is_absolute() and not d.exists() and (REPO_ROOT / d).exists():
        d = REPO_ROOT / d  # a repo-relative path such as "models/category" from any cwd
    cfg_path, w_path = d / CONFIG, d / WEIGHTS
    if not cfg_path.exists() or not w_path.exists():
        raise ValueError(
            f"{d} is not a category model folder (needs {CONFIG} and {WEIGHTS}); "
            "train one with `python -m jobs.train_category` or pass models/category"
        )
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if config.get("piece_dim"):
        check_piece_tokenizer(config, d)
    tax = taxonomy or load_taxonomy(None)
    if config["labels"] != tax.names():
        raise ValueError(
            f"model {d} was trained on other labels than taxonomy {tax.path} "
            f"({len(config['labels'])} vs {len(tax)} leaves); retrain it or use its taxonomy"
        )
    model = build_model({**config, "sparse": False})
    state = {k: v.float() for k, v in load_file(str(w_path)).items()}
    model.load_state_dict(state)
    return CategoryPredictor(model, config, device, tax)
