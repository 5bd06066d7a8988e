"""Hashed n-gram features of the category classifier (fastText-style, Joulin et al., 2017).

A document becomes a bag of bucket ids in ``[0, num_buckets)``: lower-cased word unigrams and
bigrams, a 5-character prefix of words longer than 6 characters (a cheap stemmer that lets German
compounds and inflections share evidence), and for CJK text character unigrams and bigrams (each CJK
character is a token, so "word bigrams" there are character bigrams: no segmenter dictionary on the
workers, and char bigrams are the standard strong baseline for Chinese topic classification).
Tokens that are all digits become ``<num>`` (``<year>`` for 4 digits).

Hashing: a token's hash is CRC32 of its UTF-8 bytes (stable across processes and machines, unlike
Python's salted ``hash``), cached per process; a bigram's hash mixes its two token hashes with 64-bit
multiply-add in NumPy. Only the first ``max_chars`` characters are used: the topic of a page is clear
from its beginning, and long pages must not dominate the time.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

# One token per CJK/kana character, else runs of word characters; ASCII text takes the faster \w+.
_TOKEN = re.compile(r"[\u3040-\ufaff]|[^\W\u3040-\ufaff]+")
_ASCII_TOKEN = re.compile(r"\w+")
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PREFIX_SALT = 0x5BD1E995
_CACHE: dict[str, int] = {}
_CACHE_MAX = 2_000_000


def _token_hash(t: str) -> int:
    """``crc(token) << 32 | crc(5-char prefix)`` (low half 0 = no prefix) for one lower-cased token."""
    if t.isdigit():
        t = "<year>" if len(t) == 4 else "<num>"
    h = zlib.crc32(t.encode("utf-8"))
    p = (zlib.crc32((t[:5] + "~").encode("utf-8")) ^ _PREFIX_SALT) or 1 if len(t) > 6 else 0
    return (h << 32) | p


def tokens(text: str, max_chars: int = 4000) -> list[str]:
    """The tokens features are built from (lower-cased words, digit runs, single CJK characters)."""
    text = text[:max_chars].lower()
    return (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)


def with_title(text: str, title: str | None) -> str:
    """What a model trained with page titles reads: the title on a line of its own, then the text (a
    missing or blank title leaves the text as it is)."""
    return f"{title.strip()}\n{text}" if title and title.strip() else text


def feature_ids(text: str, num_buckets: int, max_chars: int = 4000, max_features: int = 4096) -> np.ndarray:
    """Bucket ids (int64) of ``text``: unigrams, then bigrams, then prefixes; at most ``max_features``."""
    return token_feature_ids(tokens(text, max_chars), num_buckets, max_features)


def token_feature_ids(toks: list[str], num_buckets: int, max_features: int = 4096) -> np.ndarray:
    """:func:`feature_ids` of an already tokenized text."""
    if not toks:
        return np.zeros(0, dtype=np.int64)
    cache = _CACHE
    if len(cache) > _CACHE_MAX:
        cache.clear()
    try:
        packed = np.fromiter(map(cache.__getitem__, toks), dtype=np.uint64, count=len(toks))
    except KeyError:
        for t in set(toks).difference(cache):
            cache[t] = _token_hash(t)
        packed = np.fromiter(map(cache.__getitem__, toks), dtype=np.uint64, count=len(toks))
    uni = packed >> np.uint64(32)
    low = packed & np.uint64(0xFFFFFFFF)
    pre = low[low != 0]
    with np.errstate(over="ignore"):
        bi = (uni[:-1] * _M1 + uni[1:] * _M2) >> np.uint64(17)
    allh = np.concatenate([uni, bi, pre])[:max_features]
    return (allh % np.uint64(num_buckets)).astype(np.int64)


def batch_features(
    texts: list[str], num_buckets: int, max_chars: int = 4000, max_features: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``ids`` and ``offsets`` (int64, one offset per text) for ``torch.nn.EmbeddingBag``."""
    parts = [feature_ids(t or "", num_buckets, max_chars, max_features) for t in texts]
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts), dtype=np.int64)
    if len(parts) > 1:
        offsets[1:] = np.cumsum(lengths)[:-1]
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return ids, offsets


# ---------------------------------------------------------------------------------------------------
# Pretrained sub-word pieces (WordLlama static token embeddings, Miller 2024, MIT; the `wordllama` wheel
# ships its Llama-2 tokenizer and a 32,000 x 256 embedding table trained with Matryoshka truncation).
# Each lower-cased word of :func:`tokens` is encoded once per process (cached) into at most 4 piece ids,
# packed as 16-bit fields of one uint64, so a document's pieces come from the same token list as the
# hashed n-grams at the cost of a dict lookup per token. Digit runs and the bare word-start piece are
# left out (they carry no topic).

PIECE_SLOTS = 4


def wordllama_files() -> tuple[str, str]:
    """Paths of the tokenizer and the 256-dim embedding table inside the installed ``wordllama`` wheel.

    Nothing is downloaded: a missing package or file raises with the pip command to fix it."""
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the category model needs the `wordllama` package: pip install 'wordllama==0.4.0.post1'")
    root = Path(list(spec.submodule_search_locations)[0])
    tok = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    emb = root / "weights" / "l2_supercat_256.safetensors"
    for p in (tok, emb):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing from the installed wordllama; reinstall 'wordllama==0.4.0.post1'")
    return str(tok), str(emb)


class PieceEncoder:
    """Lower-cased word -> up to :data:`PIECE_SLOTS` WordLlama piece ids (+1, so 0 means empty)."""

    def __init__(self, tokenizer_path: str | None = None) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(tokenizer_path or wordllama_files()[0])
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.vocab_size = self.tokenizer.get_vocab_size()
        self._skip = {self.tokenizer.token_to_id("\u2581")}
        self._cache: dict[str, int] = {}

    def _pack(self, words: list[str]) -> None:
        for w, enc in zip(words, self.tokenizer.encode_batch(words, add_special_tokens=False)):
            v = 0
            if not w.isdigit():
                ids = [i for i in enc.ids if i not in self._skip][:PIECE_SLOTS]
                for k, i in enumerate(ids):
                    v |= (i + 1) << (16 * k)
            self._cache[w] = v

    def piece_ids(self, toks: list[str]) -> np.ndarray:
        """int64 piece ids (0-based) of the tokens, in order; empty words contribute none."""
        if not toks:
            return np.zeros(0, dtype=np.int64)
        cache = self._cache
        if len(cache) > _CACHE_MAX:
            cache.clear()
        missing = sorted(set(toks).difference(cache))
        if missing:
            self._pack(missing)
        packed = np.fromiter(map(cache.__getitem__, toks), dtype=np.uint64, count=len(toks))
        fields = packed.view(np.uint16).reshape(-1, PIECE_SLOTS).astype(np.int64)  # little-endian slots
        flat = fields.ravel()
        return flat[flat > 0] - 1
