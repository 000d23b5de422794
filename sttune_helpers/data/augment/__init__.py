"""Augmentation and synthetic training data for the data stage (applied to the train split only).

Four methods, each a function that takes a DataFrame in the canonical columns of a task shape and
returns an :class:`Augmented` (the frame plus a JSON-serialisable report of what was added,
removed or skipped, and why):

* ``synonyms.py``: :func:`synonym_replace` swaps a fraction of the eligible words for close
  synonyms, from the model's own token-embedding space (:class:`EmbeddingNeighbours`, read by
  ``token_embeddings.py``, needs no download) or from WordNet through nltk (:class:`WordNetSynonyms`).
* ``back_translation.py``: :func:`back_translate` round-trips texts through two pluggable
  :class:`Translator` objects, for example two :class:`MarianTranslator` models.
* ``simcse.py``: :func:`simcse_pairs` turns unlabeled texts into (anchor, positive) pairs with
  anchor == positive (unsupervised SimCSE).
* ``rules.py``: :func:`synthesize_pairs` builds labelled pairs from user rules (regex substitutions,
  keyword swaps and slot templates) given as plain dicts, as read from the YAML config.
* ``common.py``: the result, the row tags and the checks every method shares.

Rows are tagged: column ``augmentation`` holds the method of an added row and ``""`` for an input
row; column ``source_row`` holds the position (0-based, in the input frame) of the input row an
added row was made from. The result frame has a fresh 0..n-1 index with the input rows first, in
their order, so ``source_row`` is also that row's index in the result. When the input already went
through an augmentation, the existing tags are kept and new rows point to the root row.

Every method is deterministic for a given ``seed``. torch and transformers are imported only inside
the functions that need them, so importing this package is cheap.
"""

from .back_translation import MarianTranslator, Translator, back_translate
from .common import AUGMENTATION_COLUMN, SOURCE_ROW_COLUMN, Augmented
from .rules import Rule, RuleError, synthesize_pairs, validate_rules
from .simcse import simcse_pairs
from .synonyms import (
    EmbeddingNeighbours,
    SynonymSource,
    WordNetSynonyms,
    WordNetUnavailable,
    load_wordnet,
    same_word_family,
    synonym_replace,
    synonym_source,
)

__all__ = [
    "AUGMENTATION_COLUMN", "SOURCE_ROW_COLUMN", "Augmented", "EmbeddingNeighbours", "MarianTranslator", "Rule",
    "RuleError", "SynonymSource", "Translator", "WordNetSynonyms", "WordNetUnavailable", "back_translate",
    "load_wordnet", "same_word_family", "simcse_pairs", "synonym_replace", "synonym_source", "synthesize_pairs",
    "validate_rules",
]
