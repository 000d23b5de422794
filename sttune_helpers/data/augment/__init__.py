"""Augmentation and synthetic training data for the data stage (applied to the train split only).

Five methods, each a function that takes a DataFrame in the canonical columns of a task shape and
returns an :class:`Augmented` (the frame plus a JSON-serialisable report of what was added,
removed or skipped, and why):

* ``synonyms.py``: :func:`synonym_replace` swaps a fraction of the eligible words for close
  synonyms, from the model's own token-embedding space (:class:`EmbeddingNeighbours`, read by
  ``token_embeddings.py``, needs no download) or from WordNet through nltk (:class:`WordNetSynonyms`).
* ``back_translation.py``: :func:`back_translate` round-trips texts through two pluggable
  :class:`Translator` objects, for example two :class:`MarianTranslator` models.
* ``simcse.py``: :func:`simcse_pairs` turns unlabeled texts into (anchor, positive) pairs with
  anchor == positive (unsupervised SimCSE).
* ``augmented_sbert.py``: Augmented SBERT: :func:`train_cross_encoder` trains a cross-encoder on the
  gold pairs and :func:`silver_pairs` adds recombined pairs of the training sentences it labels.
* ``rules.py``: :func:`synthesize_pairs` builds labelled pairs from user rules (regex substitutions,
  keyword swaps and slot templates) given as plain dicts, as read from the YAML config.
* ``gains.py``: what each method was measured to add (``measured_gains.tsv``), for the recommender.
* ``common.py``: the result, the row tags and the checks every method shares.

Rows are tagged: column ``augmentation`` holds the method of an added row and ``""`` for an input
row; column ``source_row`` holds the position (0-based, in the input frame) of the input row an
added row was made from. The result frame has a fresh 0..n-1 index with the input rows first, in
their order, so ``source_row`` is also that row's index in the result. When the input already went
through an augmentation, the existing tags are kept and new rows point to the root row.

Every method is deterministic for a given ``seed``. torch and transformers are imported only inside
the functions that need them, so importing this package is cheap.
"""

from .augmented_sbert import PairLabeler, labeller_fit, neighbour_pairs, silver_pairs, train_cross_encoder
from .back_translation import MarianTranslator, Translator, back_translate
from .common import AUGMENTATION_COLUMN, SOURCE_ROW_COLUMN, Augmented
from .gains import NOT_MEASURED, measured_gain, read_gains
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
    "AUGMENTATION_COLUMN", "Augmented", "EmbeddingNeighbours", "MarianTranslator", "NOT_MEASURED", "PairLabeler",
    "Rule", "RuleError", "SOURCE_ROW_COLUMN", "SynonymSource", "Translator", "WordNetSynonyms",
    "WordNetUnavailable", "back_translate", "labeller_fit", "load_wordnet", "measured_gain", "neighbour_pairs",
    "read_gains", "same_word_family", "silver_pairs", "simcse_pairs", "synonym_replace", "synonym_source",
    "synthesize_pairs", "train_cross_encoder", "validate_rules"
]
