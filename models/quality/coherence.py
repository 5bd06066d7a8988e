"""Coherence features of the quality model: does each sentence follow from the one before?

Bags of n-grams and document statistics are blind to sentence order, so a document whose sentences were
shuffled looks as good as the original (the model card before these features rejected 5 % of
sentence-shuffled documents). Three cheap, language-independent signals of local coherence, from the
entity-grid / lexical-cohesion line of work (Halliday and Hasan 1976 "Cohesion in English"; Barzilay and
Lapata 2008 "Modeling Local Coherence: An Entity-based Approach"; Foltz et al. 1998 measure coherence as
the similarity of adjacent sentences):

* lexical cohesion: content words (Latin words of >= 4 letters, CJK character bigrams) shared by
  adjacent sentences, compared with sentences 3+ apart; in a shuffled text adjacent pairs are no closer
  than distant ones;
* discourse cues: sentences that open with a connective or a pronoun ("However", "He", "Diese", "但是",
  "他") depend on what came before; the first sentence of a document (and of a paragraph) rarely does;
* nearest neighbours: the most similar other sentence of a sentence is usually next to it in an
  ordered text, anywhere in a shuffled one;
* counts, so the model can discount documents too short to judge.

``coherence_features(texts) -> float32 [N, N_COHERENCE_FEATURES]``; plain Python + NumPy, ~0.3 ms per
document for the first ``MAX_SENTENCES`` sentences.
"""

from __future__ import annotations

import math
import re

import numpy as np

N_COHERENCE_FEATURES = 11
MAX_SENTENCES = 80
MAX_CHARS = 20000
NN_SENTENCES = 40
FAR = 3  # sentence pairs at least this far apart are the "unrelated" reference

_SENT_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")
_LATIN = re.compile(r"[^\W\d_]{4,}")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_FIRST_WORD = re.compile(r"[^\W\d_]+")

# Sentence openers that refer back (connectives, pronouns, demonstratives); English, German, French,
# Spanish first words, and Chinese openings (matched as prefixes of the sentence).
_CUE_WORDS = frozenset(
    """
    however but and also moreover furthermore therefore thus then so this these that those it its he she
    they his her their him them such meanwhile instead still yet besides finally later afterwards
    consequently nevertheless nonetheless hence accordingly additionally likewise similarly otherwise
    aber doch jedoch außerdem ausserdem deshalb daher dann dies diese dieser dieses er sie es ihr sein seine
    trotzdem dennoch zudem denn damit danach dabei dort
    mais donc ensuite cependant pourtant il elle ils elles ce cette ces
    pero además entonces sin embargo él ella ellos esta este estos
    """.split()
)
_CUE_ZH = ("但是", "但", "然而", "而且", "因此", "所以", "他们", "她们", "他", "她", "它", "这些", "这", "此外",
           "同时", "另外", "并且", "不过", "于是", "此后", "其中", "该", "对此", "随后")


def split_sentences(text: str) -> list[list[str]]:
    """Sentences grouped by paragraph (line): ``[[sentence, ...], ...]``; empty pieces dropped."""
    paras = []
    for line in text[:MAX_CHARS].split("\n"):
        sents = [s.strip() for s in _SENT_END.split(line) if s and s.strip()]
        if sents:
            paras.append(sents)
    return paras


def _content(s: str) -> frozenset[str]:
    low = s.lower()
    out = set(_LATIN.findall(low))
    for run in _CJK_RUN.findall(s):
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return frozenset(out)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))  # cosine of binary bags


def _is_cue(s: str) -> bool:
    if s.startswith(_CUE_ZH):
        return True
    m = _FIRST_WORD.match(s.lstrip("\"'“‘(«- "))
    return bool(m) and m.group(0).lower() in _CUE_WORDS


def doc_coherence(text: str) -> np.ndarray:
    """``[N_COHERENCE_FEATURES]`` float32 features of one document (see the module docstring)."""
    paras = split_sentences(text)
    sents, para_start = [], []
    for p in paras:
        for j, s in enumerate(p):
            sents.append(s)
            para_start.append(j == 0)
    sents, para_start = sents[:MAX_SENTENCES], para_start[:MAX_SENTENCES]
    n = len(sents)
    bags = [_content(s) for s in sents]
    adj = [_overlap(bags[i], bags[i + 1]) for i in range(n - 1)]
    far = [_overlap(bags[i], bags[j]) for i in range(n) for j in range(i + FAR, min(n, i + FAR + 3))]
    # nearest neighbour: is a sentence's most similar sentence (among the first NN_SENTENCES) adjacent?
    m = min(n, NN_SENTENCES)
    near, nn_adj = [], []
    for i in range(m):
        best, arg = 0.0, -1
        for j in range(m):
            if j != i:
                o = adj[min(i, j)] if abs(i - j) == 1 else _overlap(bags[i], bags[j])
                if o > best:
                    best, arg = o, j
        if arg >= 0:
            near.append(abs(arg - i) == 1)
            nn_adj.append(abs(arg - i))
    adj_m = float(np.mean(adj)) if adj else 0.0
    far_m = float(np.mean(far)) if far else 0.0
    cues = [_is_cue(s) for s in sents]
    starts = [c for c, st in zip(cues, para_start) if st]
    return np.array(
        [
            adj_m,
            far_m,
            adj_m - far_m,
            float(np.mean([a > 0 for a in adj])) if adj else 0.0,
            float(cues[0]) if cues else 0.0,  # the document opens with a back-reference
            float(np.mean(cues)) if cues else 0.0,
            float(np.mean(starts[1:])) if len(starts) > 1 else 0.0,  # paragraphs opening with one
            math.log1p(n),
            float(n >= 4),
            float(np.mean(near)) if near else 0.0,
            math.log1p(float(np.mean(nn_adj))) if nn_adj else 0.0,
        ],
        dtype=np.float32,
    )


def coherence_features(texts: list[str]) -> np.ndarray:
    """float32 ``[len(texts), N_COHERENCE_FEATURES]``."""
    if not texts:
        return np.zeros((0, N_COHERENCE_FEATURES), dtype=np.float32)
    return np.stack([doc_coherence(t or "") for t in texts])
