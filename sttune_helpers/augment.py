"""Augmentation and synthetic training data for the data stage (applied to the train split only).

Four methods, each a function that takes a DataFrame in the canonical columns of a task shape and
returns an :class:`Augmented` (the frame plus a JSON-serialisable report of what was added,
removed or skipped, and why):

* :func:`synonym_replace` swaps a fraction of the eligible words for close synonyms, from the
  model's own token-embedding space (:class:`EmbeddingNeighbours`, needs no download) or from
  WordNet through nltk (:class:`WordNetSynonyms`).
* :func:`back_translate` round-trips texts through two pluggable :class:`Translator` objects, for
  example two :class:`MarianTranslator` models (English -> German -> English).
* :func:`simcse_pairs` turns unlabeled texts into (anchor, positive) pairs with anchor == positive;
  the dropout noise at training time makes the two views differ (unsupervised SimCSE).
* :func:`synthesize_pairs` builds labelled pairs from user rules (regex substitutions, keyword
  swaps and slot templates) given as plain dicts, as read from the YAML config.

Rows are tagged: column ``augmentation`` holds the method of an added row and ``""`` for an input
row; column ``source_row`` holds the position (0-based, in the input frame) of the input row an
added row was made from. The result frame has a fresh 0..n-1 index with the input rows first, in
their order, so ``source_row`` is also that row's index in the result. When the input already went
through an augmentation, the existing tags are kept and new rows point to the root row.

Every method is deterministic for a given ``seed``. torch and transformers are imported only inside
the functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import itertools
import math
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from .core.errors import SttuneError
from .data import SHAPE_COLUMNS, TEXT_COLUMNS

AUGMENTATION_COLUMN = "augmentation"
SOURCE_ROW_COLUMN = "source_row"

# Columns rewritten by synonym replacement and back-translation. A triplet's negative is never
# touched: a rewritten negative could drift towards the anchor's meaning and teach the wrong thing.
_REWRITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "pair_score": ("sentence1", "sentence2"),
    "pair_binary": ("sentence1", "sentence2"),
    "pair_class": ("sentence1", "sentence2"),
    "triplet": ("anchor",),
    "retrieval": ("anchor",),
    "unlabeled": ("text",),
}
_POSITIVE_COLUMN_SHAPES = ("triplet", "retrieval")

MIN_WORD_LENGTH = 3
DEFAULT_SIMILARITY_THRESHOLD = 0.5
DEFAULT_TOP_K = 5
MAX_TEMPLATE_FILLINGS = 10_000

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


# --- results and shapes ----------------------------------------------------------------------


@dataclass
class Augmented:
    """What an augmentation step produced.

    ``frame``: the input rows followed by the new rows, tagged in ``augmentation`` and
    ``source_row`` (for :func:`simcse_pairs`, only the new pairs). ``report``: JSON-serialisable
    counts: ``method``, ``rows_in``, ``rows_added``, ``rows_removed``, ``rows_out``, ``skipped``
    (reason -> count), ``settings`` and method-specific details.
    """

    frame: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def added(self) -> pd.DataFrame:
        """Only the rows this step added (they come last)."""
        return self.frame.iloc[len(self.frame) - self.report["rows_added"]:]

    def summary(self) -> str:
        r = self.report
        text = f"{r['method']}: {r['rows_in']} rows in, {r['rows_added']} added"
        if r.get("rows_removed"):
            text += f", {r['rows_removed']} removed"
        if r.get("skipped"):
            text += "; skipped: " + ", ".join(f"{n} {reason}" for reason, n in r["skipped"].items())
        return text


def _check_shape(shape: str) -> None:
    if shape not in SHAPE_COLUMNS:
        raise ValueError(f"unknown task shape {shape!r}; expected one of {', '.join(SHAPE_COLUMNS)}")


def _check_frame(frame: pd.DataFrame, shape: str) -> None:
    _check_shape(shape)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in SHAPE_COLUMNS[shape] if c not in frame.columns]
    if missing:
        raise ValueError(f"shape {shape!r} needs the columns {', '.join(SHAPE_COLUMNS[shape])}; missing: "
                         f"{', '.join(missing)} (found: {', '.join(map(str, frame.columns))})")
    for column in TEXT_COLUMNS[shape]:
        for position, value in enumerate(frame[column].tolist()):
            if not isinstance(value, str):
                raise ValueError(f"{_describe_row(frame, position)}, column {column!r}: expected text, got "
                                 f"{type(value).__name__} {value!r}")


def _describe_row(frame: pd.DataFrame | None, position: int) -> str:
    where = f"row {position} (0-based position in the input)"
    if frame is not None and "_row" in frame.columns:  # data.py's spreadsheet row number
        where += f", file row {frame['_row'].iloc[position]}"
    return where


def _with_tags(frame: pd.DataFrame) -> pd.DataFrame:
    """The input rows, re-indexed 0..n-1, with the tag columns present."""
    tagged = frame.reset_index(drop=True).copy()
    if AUGMENTATION_COLUMN not in tagged.columns:
        tagged[AUGMENTATION_COLUMN] = ""
    else:
        tagged[AUGMENTATION_COLUMN] = tagged[AUGMENTATION_COLUMN].fillna("").astype(str)
    if SOURCE_ROW_COLUMN not in tagged.columns:
        tagged[SOURCE_ROW_COLUMN] = pd.array(range(len(tagged)), dtype="Int64")
    else:
        tagged[SOURCE_ROW_COLUMN] = tagged[SOURCE_ROW_COLUMN].astype("Int64")
    return tagged


def _root_row(tagged: pd.DataFrame, position: int) -> int:
    value = tagged[SOURCE_ROW_COLUMN].iloc[position]
    return position if pd.isna(value) else int(value)


def _derived_rows(tagged: pd.DataFrame, positions: list[int], changes: list[dict[str, str]],
                  method: str) -> pd.DataFrame:
    """Copies of the input rows at ``positions`` with their text columns changed and tags set."""
    rows = tagged.iloc[positions].copy()
    for column in {c for change in changes for c in change}:
        rows[column] = [change.get(column, old) for change, old in zip(changes, rows[column].tolist())]
    rows[AUGMENTATION_COLUMN] = method
    rows[SOURCE_ROW_COLUMN] = pd.array([_root_row(tagged, p) for p in positions], dtype="Int64")
    return rows


def _combine(tagged: pd.DataFrame, added: pd.DataFrame) -> pd.DataFrame:
    if added.empty:
        return tagged
    combined = pd.concat([tagged, added], ignore_index=True)
    combined[SOURCE_ROW_COLUMN] = combined[SOURCE_ROW_COLUMN].astype("Int64")
    return combined


def _report(method: str, rows_in: int, rows_added: int, skipped: Counter, settings: dict, *,
            rows_removed: int = 0, rows_out: int | None = None, **details: Any) -> dict[str, Any]:
    return {
        "method": method,
        "rows_in": int(rows_in),
        "rows_added": int(rows_added),
        "rows_removed": int(rows_removed),
        "rows_out": int(rows_in + rows_added - rows_removed if rows_out is None else rows_out),
        "skipped": {reason: int(n) for reason, n in skipped.items() if n},
        "settings": settings,
        **details,
    }


def _rewrite_columns(shape: str, include_positive: bool, columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is not None:
        columns = tuple(columns)
        unknown = [c for c in columns if c not in TEXT_COLUMNS[shape]]
        if unknown:
            raise ValueError(f"columns {unknown} are not text columns of shape {shape!r} "
                             f"({', '.join(TEXT_COLUMNS[shape])})")
        if shape == "triplet" and "negative" in columns:
            raise ValueError("a triplet's negative is never rewritten: a changed negative could come to mean "
                             "the anchor; leave 'negative' out of columns")
        return columns
    if include_positive and shape in _POSITIVE_COLUMN_SHAPES:
        return _REWRITE_COLUMNS[shape] + ("positive",)
    return _REWRITE_COLUMNS[shape]


# --- words -----------------------------------------------------------------------------------


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


def _match_case(original: str, replacement: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


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
        self.word_style = _vocab_style(token_ids)
        special = set(special_tokens)

        self._word_ids: dict[str, int] = {}
        for token, token_id in sorted(token_ids.items(), key=lambda item: item[1]):
            word = _token_word(token, self.word_style)
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
            folder = _model_folder(str(model))
            vocab, matrix, special = _read_embeddings_from_folder(folder)
            return cls(vocab, matrix, special_tokens=special, description=f"token embeddings of {folder}", **options)
        vocab, matrix, special = _read_embeddings_from_object(model, tokenizer)
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


def _vocab_style(token_ids: Mapping[str, int]) -> str:
    """How the tokenizer marks whole words: WordPiece ("##" marks a continuation), SentencePiece
    ("▁" marks a word start) or byte-level BPE ("Ġ" marks a word start)."""
    counts = Counter()
    for token in token_ids:
        if token.startswith("##"):
            counts["wordpiece"] += 1
        elif token.startswith("▁"):
            counts["sentencepiece"] += 1
        elif token.startswith("Ġ"):
            counts["bytelevel"] += 1
    style, n = counts.most_common(1)[0] if counts else ("plain", 0)
    return style if n >= 0.01 * max(1, len(token_ids)) else "plain"


def _token_word(token: str, style: str) -> str | None:
    if style == "wordpiece" or style == "plain":
        return None if token.startswith("##") else token
    marker = "▁" if style == "sentencepiece" else "Ġ"
    return token[1:] if token.startswith(marker) else None


def _model_folder(model: str) -> Path:
    if model == "default" or not Path(model).expanduser().exists():
        from .modeling import resolve_model_source

        source = resolve_model_source(model)
        if source.kind == "hub":
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(source.location, local_files_only=True))
        return Path(source.location)
    return Path(model).expanduser()


def _transformer_folder(folder: Path) -> Path:
    """Where the transformer weights live: the folder itself, or a SentenceTransformer's
    Transformer module folder named in modules.json."""
    if list(folder.glob("*.safetensors")) or (folder / "config.json").is_file() and \
            not (folder / "modules.json").is_file():
        return folder
    modules = folder / "modules.json"
    if modules.is_file():
        import json

        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Transformer"):
                return folder / module.get("path", "")
    return folder


_EMBEDDING_TENSOR_SUFFIXES = ("word_embeddings.weight", "embed_tokens.weight", "shared.weight", "wte.weight",
                              "tok_embeddings.weight", "embeddings.weight")


def _read_embeddings_from_folder(folder: Path) -> tuple[dict[str, int], np.ndarray, list[str]]:
    """Vocabulary and input-embedding matrix straight from the files: safetensors + tokenizer.json
    need neither torch nor transformers (which take minutes to import on a slow machine)."""
    weights_folder = _transformer_folder(folder)
    tokenizer_file = next((p for p in (weights_folder / "tokenizer.json", folder / "tokenizer.json") if p.is_file()),
                          None)
    weight_files = sorted(weights_folder.glob("*.safetensors"))
    if tokenizer_file is not None and weight_files:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        special = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        for weight_file in weight_files:
            with safe_open(str(weight_file), "np") as tensors:
                for suffix in _EMBEDDING_TENSOR_SUFFIXES:
                    for key in tensors.keys():
                        if key.endswith(suffix):
                            matrix = tensors.get_tensor(key)
                            if matrix.ndim == 2 and abs(matrix.shape[0] - len(vocab)) <= 0.1 * len(vocab) + 1024:
                                return vocab, matrix.astype(np.float32), special
    # Anything else (a .bin checkpoint, a slow tokenizer): let transformers load it.
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights_folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(weights_folder), local_files_only=True)
    matrix = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    return tokenizer.get_vocab(), matrix, list(tokenizer.all_special_tokens)


def _read_embeddings_from_object(model: Any, tokenizer: Any) -> tuple[dict[str, int], np.ndarray, list[str]]:
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        raise ValueError("pass tokenizer=... : the model has no .tokenizer to read the vocabulary from")
    modules = model.modules() if hasattr(model, "modules") else [model]
    for module in modules:
        get_embeddings = getattr(module, "get_input_embeddings", None)
        if callable(get_embeddings):
            embeddings = get_embeddings()
            if embeddings is not None and hasattr(embeddings, "weight"):
                matrix = embeddings.weight.detach().float().cpu().numpy()
                return tokenizer.get_vocab(), matrix, list(getattr(tokenizer, "all_special_tokens", []))
    raise ValueError(f"found no input-embedding matrix in {type(model).__name__}: expected a transformers model "
                     "(get_input_embeddings) inside it")


# --- synonym replacement ---------------------------------------------------------------------


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
        pieces += [text[last:match.start()], _match_case(match.group(), replacement)]
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
    _check_frame(frame, shape)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate is the fraction of eligible words to replace, in (0, 1]; got {rate}")
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    rewrite = _rewrite_columns(shape, include_positive, columns)
    if isinstance(source, str):
        source = synonym_source(source, model=model)
    method = f"synonym_{source.name}"
    tagged = _with_tags(frame)

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
    added = _derived_rows(tagged, positions, changes, method)
    result = _combine(tagged, added)
    settings = {"rate": rate, "copies": copies, "seed": seed, "columns": list(rewrite), **source.describe()}
    report = _report(method, len(tagged), len(added), skipped, settings,
                     words_eligible_in_changed_texts=eligible_total, words_replaced=replaced_total,
                     distinct_words_with_synonyms=len(candidates))
    return Augmented(result, report)


# --- back-translation ------------------------------------------------------------------------


@runtime_checkable
class Translator(Protocol):
    """Anything that translates a batch of texts, one output per input, in order."""

    def translate(self, texts: list[str]) -> list[str]:
        ...


class MarianTranslator:
    """A Marian translation model (e.g. ``Helsinki-NLP/opus-mt-en-de``) through transformers'
    MarianMTModel / MarianTokenizer. Loaded on first use; greedy or beam decoding, no sampling, so
    the output is deterministic. ``prefix`` is prepended to every input, for multilingual models
    that want a target-language token such as ``">>de<< "``."""

    def __init__(self, model_name_or_path: str | Path, *, batch_size: int = 16, max_length: int = 256,
                 num_beams: int = 1, device: str | None = None, prefix: str = "", local_files_only: bool = True):
        if batch_size < 1 or max_length < 1 or num_beams < 1:
            raise ValueError("batch_size, max_length and num_beams must be at least 1")
        self.model_name_or_path = str(model_name_or_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_beams = num_beams
        self.device = device
        self.prefix = prefix
        self.local_files_only = local_files_only
        self._model = None
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"MarianTranslator({self.model_name_or_path!r})"

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import MarianMTModel, MarianTokenizer

        self._tokenizer = MarianTokenizer.from_pretrained(self.model_name_or_path,
                                                          local_files_only=self.local_files_only)
        self._model = MarianMTModel.from_pretrained(self.model_name_or_path, local_files_only=self.local_files_only)
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(self.device).eval()

    def translate(self, texts: list[str]) -> list[str]:
        if not texts:
            return []
        self._load()
        import torch

        # Batches of similar length waste less padding; the output goes back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        output: list[str] = [""] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            inputs = self._tokenizer([self.prefix + texts[i] for i in batch], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length).to(self.device)
            with torch.no_grad():
                generated = self._model.generate(**inputs, max_new_tokens=self.max_length, num_beams=self.num_beams,
                                                 do_sample=False)
            for i, text in zip(batch, self._tokenizer.batch_decode(generated, skip_special_tokens=True)):
                output[i] = text.strip()
        return output


def _translate_checked(translator: Translator, texts: list[str], which: str) -> list[str]:
    if not texts:
        return []
    output = list(translator.translate(list(texts)))
    if len(output) != len(texts):
        raise ValueError(f"the {which} translator returned {len(output)} texts for {len(texts)} inputs; it must "
                         "return one per input, in order")
    bad = next((i for i, t in enumerate(output) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"the {which} translator returned {type(output[bad]).__name__} for input {bad}, not text")
    return output


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


def back_translate(frame: pd.DataFrame, shape: str, forward: Translator, backward: Translator, *,
                   fraction: float = 1.0, seed: int = 0, include_positive: bool = False,
                   columns: Sequence[str] | None = None) -> Augmented:
    """Add a back-translated copy (``backward(forward(text))``) of a seeded ``fraction`` of the rows.

    The same columns are rewritten as in :func:`synonym_replace`, each text independently. A
    back-translation identical to its source (ignoring case and spacing) or empty is dropped and
    counted; the row keeps that side as it was, and a row with no side changed is skipped.
    Each distinct text is translated once.
    """
    _check_frame(frame, shape)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction is the share of rows to back-translate, in (0, 1]; got {fraction}")
    for which, translator in (("forward", forward), ("backward", backward)):
        if not callable(getattr(translator, "translate", None)):
            raise TypeError(f"the {which} translator needs a translate(texts: list[str]) -> list[str] method")
    rewrite = _rewrite_columns(shape, include_positive, columns)
    tagged = _with_tags(frame)
    chosen = _sample_positions(len(tagged), fraction, seed)

    sources = list(dict.fromkeys(t for p in chosen for c in rewrite if (t := tagged[c].iloc[p]).strip()))
    round_trip = dict(zip(sources, _translate_checked(backward, _translate_checked(forward, sources, "forward"),
                                                      "backward")))
    identical = {s for s, t in round_trip.items() if t.strip() and _normalised(t) == _normalised(s)}
    empty = {s for s, t in round_trip.items() if not t.strip()}

    positions, changes, skipped = [], [], Counter()
    for position in chosen:
        change = {c: round_trip[t].strip() for c in rewrite
                  if (t := tagged[c].iloc[position]) in round_trip and t not in identical and t not in empty}
        if change:
            positions.append(position)
            changes.append(change)
        else:
            texts = [tagged[c].iloc[position] for c in rewrite]
            skipped["empty text" if not any(t.strip() for t in texts) else
                    "back-translation empty" if any(t in empty for t in texts) else
                    "back-translation identical to the source"] += 1
    skipped["not sampled (fraction)"] = len(tagged) - len(chosen)
    added = _derived_rows(tagged, positions, changes, "back_translation")
    settings = {"fraction": fraction, "seed": seed, "columns": list(rewrite), "forward": repr(forward),
                "backward": repr(backward)}
    report = _report("back_translation", len(tagged), len(added), skipped, settings, texts_translated=len(sources),
                     texts_identical_dropped=len(identical), texts_empty_dropped=len(empty))
    return Augmented(_combine(tagged, added), report)


def _sample_positions(n: int, fraction: float, seed: int) -> list[int]:
    if fraction >= 1.0:
        return list(range(n))
    count = math.floor(fraction * n + 0.5)
    return sorted(np.random.default_rng(seed).choice(n, size=count, replace=False).tolist())


# --- SimCSE ----------------------------------------------------------------------------------


def simcse_pairs(texts: Sequence[str] | pd.Series | pd.DataFrame, *, column: str = "text") -> Augmented:
    """Unsupervised SimCSE pairs: (anchor, positive) with anchor == positive, one per distinct text.

    The two views differ only by dropout at training time, so pair them with a loss such as
    MultipleNegativesRankingLoss and keep dropout on. ``texts`` is a list, a Series, or a frame with
    a ``column`` column (an ``unlabeled`` frame). Surrounding whitespace is stripped; duplicates are
    removed and counted; an empty or non-text entry is an error naming its row. The result frame
    holds only the pairs (its shape is ``retrieval``), tagged ``simcse`` with ``source_row``.
    """
    frame = texts if isinstance(texts, pd.DataFrame) else None
    if frame is not None:
        if column not in frame.columns:
            raise ValueError(f"the frame has no {column!r} column (found: {', '.join(map(str, frame.columns))})")
        values = frame[column].tolist()
    else:
        values = list(texts)
    kept: dict[str, int] = {}
    for position, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{_describe_row(frame, position)}: SimCSE needs a non-empty text, got {value!r}")
        kept.setdefault(value.strip(), position)
    pairs = pd.DataFrame({
        "anchor": list(kept),
        "positive": list(kept),
        AUGMENTATION_COLUMN: "simcse",
        SOURCE_ROW_COLUMN: pd.array(list(kept.values()), dtype="Int64"),
    })
    duplicates = len(values) - len(kept)
    report = _report("simcse", len(values), len(pairs), Counter(), {"column": column}, rows_removed=duplicates,
                     rows_out=len(pairs), removed={"duplicate text": duplicates} if duplicates else {},
                     frame_holds="the pairs only, not the input texts")
    return Augmented(pairs, report)


# --- rule-based synthetic pairs --------------------------------------------------------------


class RuleError(SttuneError, ValueError):
    """A synthetic-pair rule is malformed; the message names the rule's index and field."""


_RULE_FIELDS = {
    "regex": ({"kind", "pattern", "replacement", "label"}, {"name", "ignore_case"}),
    "swap": ({"kind", "words", "label"}, {"name", "ignore_case"}),
    "template": ({"kind", "slots", "label"}, {"name", "template", "templates"}),
}
_LABELS = ("positive", "negative")


@dataclass(frozen=True)
class Rule:
    index: int
    kind: str
    label: str  # "positive" or "negative"
    name: str
    pattern: re.Pattern | None = None
    replacement: str | None = None
    words: tuple[str, str] | None = None
    templates: tuple[str, ...] = ()
    # slot -> groups of interchangeable values (a group is one meaning, its values synonyms)
    slots: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()


def _rule_error(index: int, kind: str | None, field_name: str, message: str) -> RuleError:
    where = f"rule {index}" + (f" ({kind})" if kind else "")
    return RuleError(f"{where}, field {field_name!r}: {message}")


def validate_rules(rules: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Check rules given as plain dicts (as read from YAML) and return them parsed.

    * ``{"kind": "regex", "pattern": "...", "replacement": "...", "label": "positive"}``: every text
      the pattern matches gives the pair (text, substituted text). Optional ``ignore_case``.
    * ``{"kind": "swap", "words": ["login", "logout"], "label": "negative"}``: every text holding
      either word (whole word, any case) gives (text, text with the two words swapped); "negative"
      for overlapping keywords with a different intent, "positive" for synonyms.
    * ``{"kind": "template", "template": "how do I {action} my {object}", "slots": {...},
      "label": ...}`` (or ``"templates": [...]``, paraphrases sharing the slots). A slot value is a
      word or a list of synonyms, e.g. ``action: [[reset, change], delete]``: one list is one
      meaning. "positive" pairs two different wordings of the same meaning (another template or
      other synonyms, so it needs paraphrase templates or synonym lists); "negative" pairs fillings
      of the same template that differ in one slot's meaning (much word overlap, other intent).

    Every rule may have a ``name`` (used in the tags). Errors name the rule index and the field.
    """
    if isinstance(rules, Mapping) or not isinstance(rules, Sequence):
        raise RuleError(f"rules must be a list of rules (dicts), got {type(rules).__name__}")
    parsed = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise RuleError(f"rule {index}: expected a mapping with a 'kind' field, got {type(rule).__name__}")
        kind = rule.get("kind")
        if kind not in _RULE_FIELDS:
            raise _rule_error(index, None, "kind", f"must be one of {', '.join(_RULE_FIELDS)}, got {kind!r}")
        required, optional = _RULE_FIELDS[kind]
        for name in sorted(required - set(rule)):
            raise _rule_error(index, kind, name, "is missing")
        for name in sorted(set(rule) - required - optional):
            raise _rule_error(index, kind, name, f"is not a field of a {kind} rule; expected "
                                                 f"{', '.join(sorted(required | optional))}")
        label = rule["label"]
        if label not in _LABELS:
            raise _rule_error(index, kind, "label", f"must be 'positive' or 'negative', got {label!r}")
        name = rule.get("name", f"{kind}#{index}")
        if not isinstance(name, str) or not name:
            raise _rule_error(index, kind, "name", f"must be a non-empty string, got {name!r}")
        ignore_case = rule.get("ignore_case", kind == "swap")
        if not isinstance(ignore_case, bool):
            raise _rule_error(index, kind, "ignore_case", f"must be true or false, got {ignore_case!r}")
        flags = re.IGNORECASE if ignore_case else 0
        if kind == "regex":
            parsed.append(_parse_regex_rule(index, rule, label, name, flags))
        elif kind == "swap":
            words = rule["words"]
            if not (isinstance(words, Sequence) and not isinstance(words, str) and len(words) == 2
                    and all(isinstance(w, str) and w.strip() for w in words)
                    and words[0].strip().lower() != words[1].strip().lower()):
                raise _rule_error(index, kind, "words", f"must be a list of two different words, got {words!r}")
            first, second = (w.strip() for w in words)
            pattern = re.compile(rf"(?<!\w)({re.escape(first)}|{re.escape(second)})(?!\w)", flags)
            parsed.append(Rule(index, kind, label, name, pattern=pattern, words=(first, second)))
        else:
            parsed.append(_parse_template_rule(index, rule, label, name))
    return parsed


def _parse_regex_rule(index: int, rule: Mapping[str, Any], label: str, name: str, flags: int) -> Rule:
    pattern, replacement = rule["pattern"], rule["replacement"]
    if not isinstance(pattern, str) or not pattern:
        raise _rule_error(index, "regex", "pattern", f"must be a non-empty string, got {pattern!r}")
    if not isinstance(replacement, str):
        raise _rule_error(index, "regex", "replacement", f"must be a string, got {replacement!r}")
    try:
        compiled = re.compile(pattern, flags)
    except re.error as error:
        raise _rule_error(index, "regex", "pattern", f"is not a valid regular expression: {error}") from None
    try:  # a bad group reference in the replacement shows only on a match: test it on a fake one
        _check_replacement(compiled, replacement)
    except (re.error, IndexError) as error:
        raise _rule_error(index, "regex", "replacement", f"is not a valid replacement for the pattern: {error}") \
            from None
    return Rule(index, "regex", label, name, pattern=compiled, replacement=replacement)


def _check_replacement(compiled: re.Pattern, replacement: str) -> None:
    for ref in re.findall(r"\\g<([^>]*)>|\\(\d+)", replacement):
        group = ref[0] or ref[1]
        if group.isdigit():
            if int(group) > compiled.groups:
                raise re.error(f"invalid group reference {group} (the pattern has {compiled.groups} groups)")
        elif group not in compiled.groupindex:
            raise re.error(f"unknown group name {group!r}")
    re.compile("").sub(re.sub(r"\\g<[^>]*>|\\\d+", "", replacement), "")  # other escape errors


def _parse_template_rule(index: int, rule: Mapping[str, Any], label: str, name: str) -> Rule:
    if ("template" in rule) == ("templates" in rule):
        raise _rule_error(index, "template", "template", "give either 'template' (one string) or 'templates' "
                                                         "(a list of paraphrases), not both or neither")
    templates = [rule["template"]] if "template" in rule else rule["templates"]
    field_name = "template" if "template" in rule else "templates"
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates or \
            not all(isinstance(t, str) and t.strip() for t in templates):
        raise _rule_error(index, "template", field_name, f"must be non-empty text(s), got {templates!r}")
    slots = rule["slots"]
    if not isinstance(slots, Mapping) or not slots:
        raise _rule_error(index, "template", "slots", f"must map slot names to lists of values, got {slots!r}")
    parsed_slots = []
    for slot, values in slots.items():
        where = f"slots.{slot}"
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise _rule_error(index, "template", where, f"must be a non-empty list of values, got {values!r}")
        groups = []
        for value in values:
            group = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Sequence) else ()
            if not group or not all(isinstance(v, str) and v.strip() for v in group):
                raise _rule_error(index, "template", where,
                                  f"each value must be text or a non-empty list of synonyms (text), got {value!r}")
            groups.append(tuple(v.strip() for v in group))
        parsed_slots.append((str(slot), tuple(groups)))
    slot_names = {slot for slot, _ in parsed_slots}
    for t_index, template in enumerate(templates):
        try:
            fields = {f for _, f, spec, conv in string.Formatter().parse(template) if f is not None}
        except ValueError as error:
            raise _rule_error(index, "template", field_name, f"{template!r} is not a valid template: {error}") \
                from None
        if "" in fields or any(not f.isidentifier() for f in fields):
            raise _rule_error(index, "template", field_name, f"{template!r}: placeholders must be slot names like "
                                                             "{action}")
        if fields - slot_names:
            raise _rule_error(index, "template", field_name, f"{template!r} uses {sorted(fields - slot_names)}, "
                                                             "which are not in 'slots'")
        if slot_names - fields:
            raise _rule_error(index, "template", field_name, f"{template!r} does not use the slots "
                                                             f"{sorted(slot_names - fields)}")
    meanings = math.prod(len(groups) for _, groups in parsed_slots)
    wordings = math.prod(len(g) for _, groups in parsed_slots for g in groups)
    if meanings * len(templates) > MAX_TEMPLATE_FILLINGS or wordings > MAX_TEMPLATE_FILLINGS:
        raise _rule_error(index, "template", "slots", f"gives more than {MAX_TEMPLATE_FILLINGS} fillings; split "
                                                      "the rule")
    if label == "positive" and len(templates) < 2 and all(len(g) < 2 for _, groups in parsed_slots for g in groups):
        raise _rule_error(index, "template", "slots", "a positive template rule pairs different wordings of one "
                          "meaning: give paraphrases in 'templates' or synonym lists as slot values (e.g. "
                          "action: [[reset, change], delete])")
    if label == "negative" and all(len(groups) < 2 for _, groups in parsed_slots):
        raise _rule_error(index, "template", "slots", "a negative template rule pairs fillings that differ in one "
                          "slot: give some slot at least two values")
    return Rule(index, "template", label, name, templates=tuple(templates), slots=tuple(parsed_slots))


def _swap_text(rule: Rule, text: str) -> str:
    first, second = rule.words

    def swap(match: re.Match) -> str:
        word = match.group()
        other = second if word.lower() == first.lower() else first
        return _match_case(word, other)

    return rule.pattern.sub(swap, text)


def _template_pairs(rule: Rule, rng: np.random.Generator) -> list[tuple[str, str]]:
    names = [slot for slot, _ in rule.slots]
    groups = [g for _, g in rule.slots]
    pairs: list[tuple[str, str]] = []
    for meaning in itertools.product(*(range(len(g)) for g in groups)):
        if rule.label == "positive":
            options = [groups[s][m] for s, m in enumerate(meaning)]
            wordings = list(dict.fromkeys(
                template.format(**dict(zip(names, choice)))
                for template in rule.templates for choice in itertools.product(*options)))
            pairs += itertools.combinations(wordings, 2)
        else:
            # Pair with each meaning that differs in exactly one slot (later values only, so each
            # unordered pair once). The other slots keep the same word, so the texts overlap most.
            for slot, value in enumerate(meaning):
                for other in range(value + 1, len(groups[slot])):
                    template = rule.templates[int(rng.integers(len(rule.templates)))]
                    words = {n: groups[s][m][int(rng.integers(len(groups[s][m])))]
                             for s, (n, m) in enumerate(zip(names, meaning))}
                    changed = dict(words)
                    changed[names[slot]] = groups[slot][other][int(rng.integers(len(groups[slot][other])))]
                    pairs.append((template.format(**words), template.format(**changed)))
    return pairs


@dataclass
class _Pair:
    first: str
    second: str
    label: str
    rule: Rule
    source_row: int | None


def synthesize_pairs(frame: pd.DataFrame, shape: str, rules: Sequence[Mapping[str, Any]], *,
                     source_columns: Sequence[str] | None = None, label_values: Mapping[str, Any] | None = None,
                     max_pairs_per_rule: int = 500, seed: int = 0) -> Augmented:
    """Add labelled pairs made by ``rules`` (see :func:`validate_rules`) to ``frame``.

    Regex and swap rules rewrite the distinct texts of ``source_columns`` (default: all the shape's
    text columns); template rules need no input text. Each rule keeps at most
    ``max_pairs_per_rule`` pairs (a seeded sample). Pairs of identical texts, pairs already in the
    frame or made twice, and pairs that rules label both ways are dropped and counted.

    Output per shape: pair_binary label 1/0; pair_score score 1.0/0.0; pair_class the class given by
    ``label_values`` (``{"positive": ..., "negative": ...}``, required); retrieval the positives
    only; triplet: for each text that has both a positive and a negative partner (from any rules),
    one triplet (anchor, positive, negative) per positive, cycling through its negatives in a seeded
    order. Unlabeled data has no place for a pair and is refused.
    Added rows are tagged ``rule:<name>`` (triplets ``rule:<positive name>+<negative name>``);
    ``source_row`` is the row a rewritten text came from, empty for templates.
    """
    _check_frame(frame, shape)
    if shape == "unlabeled":
        raise ValueError("rule-based pairs need a pair, triplet or retrieval shape; unlabeled data (one text "
                         "column) has no place for a pair or label")
    if max_pairs_per_rule < 1:
        raise ValueError(f"max_pairs_per_rule must be at least 1, got {max_pairs_per_rule}")
    parsed = validate_rules(rules)
    values = _label_values(shape, label_values, frame)
    columns = tuple(source_columns) if source_columns is not None else TEXT_COLUMNS[shape]
    unknown = [c for c in columns if c not in TEXT_COLUMNS[shape]]
    if unknown:
        raise ValueError(f"source_columns {unknown} are not text columns of shape {shape!r}")
    tagged = _with_tags(frame)
    text_rows: dict[str, int] = {}
    for position in range(len(tagged)):
        for column in columns:
            text_rows.setdefault(tagged[column].iloc[position], position)

    rng = np.random.default_rng(seed)
    skipped, per_rule, made = Counter(), [], []
    for rule in parsed:
        if rule.kind == "template":
            raw = [(a, b, None) for a, b in _template_pairs(rule, rng)]
        else:
            raw = []
            for text, position in text_rows.items():
                if rule.pattern.search(text) is None:
                    continue
                if rule.kind == "regex":
                    try:
                        new = rule.pattern.sub(rule.replacement, text)
                    except (re.error, IndexError) as error:
                        raise _rule_error(rule.index, "regex", "replacement", str(error)) from None
                else:
                    new = _swap_text(rule, text)
                raw.append((text, new, position))
        changed = [r for r in raw if r[1].strip() and r[0].strip() != r[1].strip()]
        skipped["rewrite left the text unchanged or empty"] += len(raw) - len(changed)
        # A swap turns "a x" into "a y" and "a y" into "a x": one pair; drop repeats before the cap.
        distinct, keys = [], set()
        for r in changed:
            if frozenset(r[:2]) not in keys:
                keys.add(frozenset(r[:2]))
                distinct.append(r)
        skipped["made twice"] += len(changed) - len(distinct)
        raw = distinct
        if len(raw) > max_pairs_per_rule:
            skipped["over max_pairs_per_rule"] += len(raw) - max_pairs_per_rule
            raw = [raw[i] for i in sorted(rng.choice(len(raw), size=max_pairs_per_rule, replace=False).tolist())]
        per_rule.append({"index": rule.index, "name": rule.name, "kind": rule.kind, "label": rule.label,
                         "pairs": len(raw)})
        made += [_Pair(a, b, rule.label, rule, row) for a, b, row in raw]

    pairs = _drop_bad_pairs(made, tagged, shape, skipped)
    if shape == "retrieval":
        skipped["negative pair (retrieval keeps positives only)"] += sum(p.label == "negative" for p in pairs)
        pairs = [p for p in pairs if p.label == "positive"]
    if shape == "triplet":
        added = _triplet_rows(pairs, tagged, rng, skipped)
    else:
        added = _pair_rows(pairs, tagged, shape, values)
    settings = {"rules": len(parsed), "source_columns": list(columns), "max_pairs_per_rule": max_pairs_per_rule,
                "seed": seed, "label_values": {k: _plain(v) for k, v in values.items()} if values else None}
    report = _report("rules", len(tagged), len(added), skipped, settings, per_rule=per_rule,
                     added_by_tag={k: int(v) for k, v in Counter(added[AUGMENTATION_COLUMN]).items()}
                     if len(added) else {})
    return Augmented(_combine(tagged, added), report)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _label_values(shape: str, label_values: Mapping[str, Any] | None, frame: pd.DataFrame) -> dict[str, Any]:
    defaults = {"pair_binary": {"positive": 1, "negative": 0}, "pair_score": {"positive": 1.0, "negative": 0.0}}
    if label_values is not None:
        missing = [k for k in _LABELS if k not in label_values]
        if missing:
            raise ValueError(f"label_values needs the keys 'positive' and 'negative'; missing {missing}")
        return dict(label_values)
    if shape == "pair_class":
        present = sorted(map(str, frame["label"].dropna().unique()))[:20]
        raise ValueError("pair_class labels are classes, so pass label_values={'positive': <class>, "
                         f"'negative': <class>}} (classes in the data: {present})")
    return defaults.get(shape, {})


def _drop_bad_pairs(made: list[_Pair], tagged: pd.DataFrame, shape: str, skipped: Counter) -> list[_Pair]:
    existing = set()
    if shape in ("pair_score", "pair_binary", "pair_class"):
        existing = {frozenset(p) for p in zip(tagged["sentence1"], tagged["sentence2"])}
    elif shape == "retrieval":
        existing = {frozenset(p) for p in zip(tagged["anchor"], tagged["positive"])}
    labels = defaultdict(set)
    for pair in made:
        labels[frozenset((pair.first, pair.second))].add(pair.label)
    kept, seen = [], set()
    for pair in made:
        key = frozenset((pair.first, pair.second))
        if len(labels[key]) > 1:
            skipped["rules disagree on the label"] += 1
        elif key in existing:
            skipped["already in the data"] += 1
        elif key in seen:
            skipped["made twice"] += 1
        else:
            seen.add(key)
            kept.append(pair)
    return kept


def _empty_rows(tagged: pd.DataFrame, count: int) -> pd.DataFrame:
    # Every column of the input, empty; the caller assigns whole columns, which sets their dtype.
    return pd.DataFrame({column: [None] * count for column in tagged.columns}, index=range(count))


def _pair_rows(pairs: list[_Pair], tagged: pd.DataFrame, shape: str, values: Mapping[str, Any]) -> pd.DataFrame:
    rows = _empty_rows(tagged, len(pairs))
    first, second = ("anchor", "positive") if shape == "retrieval" else ("sentence1", "sentence2")
    rows[first] = [p.first for p in pairs]
    rows[second] = [p.second for p in pairs]
    if shape != "retrieval":
        target = "score" if shape == "pair_score" else "label"
        rows[target] = [values[p.label] for p in pairs]
    rows[AUGMENTATION_COLUMN] = [f"rule:{p.rule.name}" for p in pairs]
    rows[SOURCE_ROW_COLUMN] = pd.array([None if p.source_row is None else _root_row(tagged, p.source_row)
                                        for p in pairs], dtype="Int64")
    return rows


def _triplet_rows(pairs: list[_Pair], tagged: pd.DataFrame, rng: np.random.Generator,
                  skipped: Counter) -> pd.DataFrame:
    # Pairs are symmetric, so each text of a pair can be the anchor.
    positives, negatives, rows_of = defaultdict(list), defaultdict(list), {}
    for pair in pairs:
        for anchor, other in ((pair.first, pair.second), (pair.second, pair.first)):
            (positives if pair.label == "positive" else negatives)[anchor].append((other, pair))
        if pair.source_row is not None:
            rows_of.setdefault(pair.first, pair.source_row)
    triplets = []
    for anchor in positives:
        if anchor not in negatives:
            continue
        order = rng.permutation(len(negatives[anchor])).tolist()
        for i, (positive, pos_pair) in enumerate(positives[anchor]):
            negative, neg_pair = negatives[anchor][order[i % len(order)]]
            if negative != positive:
                triplets.append((anchor, positive, negative, f"rule:{pos_pair.rule.name}+{neg_pair.rule.name}",
                                 rows_of.get(anchor)))
    paired_texts = {t for t in positives if t in negatives}
    unpaired = {frozenset((p.first, p.second)) for p in pairs
                if p.first not in paired_texts and p.second not in paired_texts}
    skipped["pair with no partner of the other label for a triplet"] += len(unpaired)
    rows = _empty_rows(tagged, len(triplets))
    for i, column in enumerate(("anchor", "positive", "negative")):
        rows[column] = [t[i] for t in triplets]
    rows[AUGMENTATION_COLUMN] = [t[3] for t in triplets]
    rows[SOURCE_ROW_COLUMN] = pd.array([None if t[4] is None else _root_row(tagged, t[4]) for t in triplets],
                                       dtype="Int64")
    return rows
