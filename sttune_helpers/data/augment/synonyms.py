"""Synonym replacement: synonym sources (neighbours in a model's token-embedding space, or WordNet
through nltk) and :func:`synonym_replace`, which adds rewritten copies of rows with a fraction of
their eligible words swapped for close synonyms."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from ...core.errors import SettingError, SttuneError
from .common import Augmented, check_frame, combine, derived_rows, make_report, match_case, rewrite_columns, with_tags
from .token_embeddings import (
    model_folder,
    read_embeddings_from_folder,
    read_embeddings_from_object,
    token_word,
    vocab_style,
)

MIN_WORD_LENGTH = 3
DEFAULT_SIMILARITY_THRESHOLD = 0.5
DEFAULT_TOP_K = 5


# A compact English stopword list, so that the embedding source needs no nltk data. Function words
# have no useful synonyms, and replacing them breaks grammar.
STOPWORDS = frozenset("""
a about above after again against all almost also although am among an and another any anyone
anything are aren around as at be became because been before being below between both but by can
cannot could couldn did didn do does doesn doing don done down during each either else enough even
ever every few for from further get gets got had hadn has hasn have haven having he her here hers
herself him himself his how however i if in into is isn it its itself just least less let like
many may me might mine more most much must mustn my myself neither no nor not now of off often on
once one only onto or other others ought our ours ourselves out over own per perhaps quite rather
really same shall shan she should shouldn since so some something such than that the their theirs
them themselves then there these they this those though through thus till to too toward towards
under until up upon us very via was wasn we well were weren what whatever when where whether which
while who whom whose why will with within without won would wouldn yet you your yours yourself
yourselves
""".split())

# A word: letters, possibly with inner apostrophes ("don't"), not glued to digits or underscores.
_WORD = re.compile(r"(?<![\w'’])[^\W\d_]+(?:['’][^\W\d_]+)*(?![\w'’])")


def _is_candidate_word(word: str) -> bool:
    return len(word) >= MIN_WORD_LENGTH and word.isalpha() and word.lower() not in STOPWORDS


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def same_word_family(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` again in another case, number or inflection ("car"/"Cars",
    "happy"/"unhappy", "woman"/"women"): such a neighbour is not a synonym worth swapping in."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    stem = short if len(short) <= 3 else short[:-1]  # "happy" -> "happ" also catches "unhappy"
    if stem in long:
        return True
    shared_prefix = sum(1 for _ in itertools.takewhile(lambda pair: pair[0] == pair[1], zip(a, b)))
    if shared_prefix >= max(3, len(short) - 2):  # "parked"/"parking", "easy"/"easily"
        return True
    return len(short) >= 4 and _within_one_edit(a, b)  # "woman"/"women", "colour"/"color"



def _replacement_count(rate: float, eligible: int) -> int:
    # At least one word, so every augmented row differs from its source; round half up.
    if eligible == 0 or rate <= 0:
        return 0
    return min(eligible, max(1, math.floor(rate * eligible + 0.5)))


# --- synonym sources -------------------------------------------------------------------------


@runtime_checkable
class SynonymSource(Protocol):
    """Gives replacement candidates, best first, for the words it knows."""

    name: str

    def candidates(self, words: Iterable[str]) -> dict[str, list[str]]:
        """Map each known word (as given) to its candidates; words without any are left out."""
        ...

    def describe(self) -> dict[str, Any]:
        ...


class WordNetUnavailable(SttuneError, RuntimeError):
    """nltk or its WordNet data is missing; the message says how to install it."""


class EmbeddingNeighbours:
    """Synonyms as nearest neighbours in a transformer's input token-embedding space.

    Only whole-word alphabetic vocabulary tokens of at least 3 letters that are not stopwords take
    part, on both sides. Neighbours are ranked by cosine similarity; the word itself and its case,
    plural and inflection variants are left out, and so is anything below ``threshold``, so that
    replacements stay close. Note that embedding neighbours are related words, not strict synonyms:
    an antonym or a sibling ("red" -> "blue") can pass the threshold, so keep the rate low.
    Neighbours are computed only for the words asked for (a words x vocabulary product), and cached.
    """

    name = "embedding"

    def __init__(self, vocab: Mapping[str, int] | Sequence[str], embeddings: Any, *,
                 threshold: float = DEFAULT_SIMILARITY_THRESHOLD, top_k: int = DEFAULT_TOP_K,
                 special_tokens: Iterable[str] = (), description: str = "token embeddings"):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [0, 1], got {threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"embeddings must be a (vocabulary x dimension) matrix, got shape {matrix.shape}")
        token_ids = dict(vocab) if isinstance(vocab, Mapping) else {t: i for i, t in enumerate(vocab)}
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self.description = description
        self.word_style = vocab_style(token_ids)
        special = set(special_tokens)

        self._word_ids: dict[str, int] = {}
        for token, token_id in sorted(token_ids.items(), key=lambda item: item[1]):
            word = token_word(token, self.word_style)
            if word is None or token in special or token_id >= len(matrix) or not _is_candidate_word(word):
                continue
            self._word_ids.setdefault(word, token_id)
        if not self._word_ids:
            raise ValueError("the vocabulary has no whole-word alphabetic tokens to draw synonyms from")
        self._pool_words = list(self._word_ids)
        pool = matrix[[self._word_ids[w] for w in self._pool_words]]
        norms = np.linalg.norm(pool, axis=1, keepdims=True)
        self._pool = pool / np.maximum(norms, 1e-12)
        self._pool_index = {w: i for i, w in enumerate(self._pool_words)}
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_model(cls, model: Any = "default", *, tokenizer: Any = None, **options: Any) -> "EmbeddingNeighbours":
        """Build from a model: ``"default"`` (the packaged all-MiniLM-L6-v2), a local folder, a hub
        name in the local cache, or a loaded SentenceTransformer / transformers model (then the
        tokenizer comes from ``model.tokenizer`` or ``tokenizer``)."""
        if isinstance(model, (str, Path)):
            folder = model_folder(str(model))
            vocab, matrix, special = read_embeddings_from_folder(folder)
            return cls(vocab, matrix, special_tokens=special, description=f"token embeddings of {folder}", **options)
        vocab, matrix, special = read_embeddings_from_object(model, tokenizer)
        return cls(vocab, matrix, special_tokens=special,
                   description=f"token embeddings of a loaded {type(model).__name__}", **options)

    def lookup(self, word: str) -> str | None:
        """The vocabulary word that stands for ``word`` (lower case first), or None."""
        for form in (word.lower(), word):
            if form in self._word_ids:
                return form
        return None

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two vocabulary words' token embeddings."""
        ia, ib = self._pool_index.get(self.lookup(a) or ""), self._pool_index.get(self.lookup(b) or "")
        if ia is None or ib is None:
            raise KeyError(f"{a if ia is None else b!r} is not a whole-word token of the vocabulary")
        return float(self._pool[ia] @ self._pool[ib])

    def candidates(self, words: Iterable[str]) -> dict[str, list[str]]:
        known = {word: self.lookup(word) for word in set(words) if _is_candidate_word(word)}
        missing = sorted({key for key in known.values() if key is not None and key not in self._cache})
        # Only a few dozen candidates per word can pass the filters; look at a few more than top_k.
        depth = min(len(self._pool_words), self.top_k + 50)
        for start in range(0, len(missing), 256):
            chunk = missing[start:start + 256]
            scores = self._pool[[self._pool_index[w] for w in chunk]] @ self._pool.T
            best = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
            for word, row, top in zip(chunk, scores, best):
                found: list[str] = []
                for index in top[np.argsort(-row[top], kind="stable")]:
                    if row[index] < self.threshold or len(found) == self.top_k:
                        break
                    neighbour = self._pool_words[index]
                    if not same_word_family(word, neighbour) and \
                            not any(same_word_family(neighbour, f) for f in found):
                        found.append(neighbour)
                self._cache[word] = found
        return {word: self._cache[key] for word, key in known.items() if key is not None and self._cache[key]}

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "from": self.description, "threshold": self.threshold, "top_k": self.top_k,
                "vocabulary_words": len(self._pool_words)}


class WordNetSynonyms:
    """Synonyms from WordNet (nltk): the lemmas of a word's first ``max_senses`` senses, one-word
    alphabetic lemmas only, its own variants left out. Raises :class:`WordNetUnavailable` with the
    install command when nltk or its WordNet data is missing."""

    name = "wordnet"

    def __init__(self, *, top_k: int = DEFAULT_TOP_K, max_senses: int = 3):
        self.top_k = int(top_k)
        self.max_senses = int(max_senses)
        self._wordnet = load_wordnet()
        self._cache: dict[str, list[str]] = {}

    def candidates(self, words: Iterable[str]) -> dict[str, list[str]]:
        result = {}
        for word in set(words):
            if not _is_candidate_word(word):
                continue
            key = word.lower()
            if key not in self._cache:
                found: list[str] = []
                for synset in self._wordnet.synsets(key)[:self.max_senses]:
                    for lemma in synset.lemma_names():
                        if lemma.isalpha() and lemma.lower() not in STOPWORDS and not same_word_family(key, lemma) \
                                and not any(same_word_family(lemma, f) for f in found):
                            found.append(lemma)
                self._cache[key] = found[:self.top_k]
            if self._cache[key]:
                result[word] = self._cache[key]
        return result

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "top_k": self.top_k, "max_senses": self.max_senses}


def load_wordnet() -> Any:
    """nltk's WordNet reader, or :class:`WordNetUnavailable` saying how to install what is missing."""
    try:
        import nltk
    except ImportError as error:
        raise WordNetUnavailable(
            "WordNet synonyms need nltk, which is not installed. Install it with `pip install nltk`, then its "
            "WordNet data with `python -m nltk.downloader wordnet`. The 'embedding' synonym source needs "
            "no download.") from error
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError as error:
        raise WordNetUnavailable(
            "nltk is installed but its WordNet data is not (looked in: " + ", ".join(map(str, nltk.data.path)) +
            "). Install it with `python -m nltk.downloader wordnet`. The 'embedding' synonym source needs "
            "no download.") from error
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


def synonym_source(name: str = "embedding", *, model: Any = "default", **options: Any) -> SynonymSource:
    """The synonym source called ``name`` ("embedding" or "wordnet"), as named in the config."""
    if name == "embedding":
        return EmbeddingNeighbours.from_model(model, **options)
    if name == "wordnet":
        return WordNetSynonyms(**options)
    raise ValueError(f"unknown synonym source {name!r}; expected 'embedding' or 'wordnet'")



def _replace_words(text: str, candidates: Mapping[str, list[str]], rate: float,
                   rng: np.random.Generator) -> tuple[str, int, int]:
    """``text`` with about ``rate`` of its eligible words replaced; returns (text, eligible, replaced)."""
    matches = [m for m in _WORD.finditer(text) if m.group() in candidates]
    count = _replacement_count(rate, len(matches))
    if count == 0:
        return text, len(matches), 0
    chosen = sorted(rng.choice(len(matches), size=count, replace=False).tolist())
    pieces, last = [], 0
    for index in chosen:
        match = matches[index]
        options = candidates[match.group()]
        replacement = options[int(rng.integers(len(options)))]
        pieces += [text[last:match.start()], match_case(match.group(), replacement)]
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces), len(matches), count


def synonym_replace(frame: pd.DataFrame, shape: str, source: SynonymSource | str = "embedding", *,
                    rate: float = 0.15, copies: int = 1, seed: int = 0, include_positive: bool = False,
                    columns: Sequence[str] | None = None, model: Any = "default") -> Augmented:
    """Add ``copies`` rewritten copies of each row in which ``rate`` (a fraction, rounded half up,
    at least one word) of the eligible words of each text column are replaced by synonyms.

    Eligible words: alphabetic, 3+ letters, not stopwords, with at least one candidate in
    ``source`` (an object or "embedding" / "wordnet"; "embedding" uses ``model``'s token
    embeddings). Capitalisation and surrounding punctuation are kept. Pair shapes rewrite each side
    independently; triplets rewrite the anchor (and the positive with ``include_positive``), never
    the negative; retrieval rewrites the anchor (and the positive likewise). Labels and scores are
    copied. A copy that changed nothing, or repeats another copy, is skipped and counted.
    """
    check_frame(frame, shape)
    if not 0.0 < rate <= 1.0:
        raise SettingError(f"rate is the fraction of eligible words to replace, in (0, 1]; got {rate}")
    if copies < 1:
        raise SettingError(f"copies must be at least 1, got {copies}")
    rewrite = rewrite_columns(shape, include_positive, columns)
    if isinstance(source, str):
        source = synonym_source(source, model=model)
    method = f"synonym_{source.name}"
    tagged = with_tags(frame)

    words = {m.group() for column in rewrite for text in tagged[column] for m in _WORD.finditer(text)}
    candidates = source.candidates(words)

    texts = {column: tagged[column].tolist() for column in rewrite}
    positions, changes, skipped = [], [], Counter()
    eligible_total = replaced_total = 0
    for position in range(len(tagged)):
        seen = {tuple(texts[c][position] for c in rewrite)}
        for copy in range(copies):
            change, eligible_row = {}, 0
            for column_index, column in enumerate(rewrite):
                # One generator per text: a row's result does not depend on the other rows.
                rng = np.random.default_rng([seed, position, copy, column_index])
                original = texts[column][position]
                new_text, eligible, replaced = _replace_words(original, candidates, rate, rng)
                eligible_row += eligible
                if replaced:
                    change[column] = new_text
                    eligible_total += eligible
                    replaced_total += replaced
            key = tuple(change.get(c, texts[c][position]) for c in rewrite)
            if not change:
                skipped["no eligible word with a close synonym" if eligible_row == 0 else "unchanged"] += 1
            elif key in seen:
                skipped["repeats another copy of the same row"] += 1
            else:
                seen.add(key)
                positions.append(position)
                changes.append(change)
    added = derived_rows(tagged, positions, changes, method)
    result = combine(tagged, added)
    settings = {"rate": rate, "copies": copies, "seed": seed, "columns": list(rewrite), **source.describe()}
    report = make_report(method, len(tagged), len(added), skipped, settings,
                     words_eligible_in_changed_texts=eligible_total, words_replaced=replaced_total,
                     distinct_words_with_synonyms=len(candidates))
    return Augmented(result, report)
