"""What a task shape is: the one place that knows how data of that shape looks, which losses fit it,
and how a model is measured on it. Data, loss, training, evaluation and viz code ask the shape
instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..core.errors import SttuneError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LossChoice:
    name: str  # a sentence-transformers loss class name
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    # Parameter -> what it does, for the notebook and the widgets.
    tunable: dict[str, str] = field(default_factory=dict)


MNRL_TUNABLE = {"temperature": "softmax temperature over the in-batch candidates (loss.temperature; scale = 1/T)"}
RANKING_TUNABLE = {"temperature": "sharpness of the pairwise ranking (loss.temperature; scale = 1/T)"}
# The recipe of both pair shapes: the task learnt behind a prompt, the base model's general ability held by an
# anchor over 8 texts every second step at twice the weight, at a higher rate in batches of 32 pairs
# (bench/RESULTS.md: MRPC, sessions 28-33; full STS-B and the SNLI transfer case, session 36).
ANCHORED_PAIR_RECIPE = {"train.task_prompt": "task: ", "train.general_anchor": 10.0, "train.general_anchor_texts": 8,
                        "train.general_anchor_every": 2, "train.learning_rate": 8e-5, "train.batch_size": 32}


@dataclass(frozen=True)
class ShapeRecipe:
    """Settings measured to beat the plain recipe on a shape's bench set; stage 02 fills them into a
    run's config where it leaves them at their defaults (train.shape_recipe, training/shape_recipe.py)."""

    settings: dict[str, Any]  # dotted config keys and their values
    reason: str  # what was measured, for plan.json and the notebook
    # The losses it was measured with: a run whose loss.name names another keeps its settings as given
    # (a loss of another scale needs its own anchor weight and rate).
    losses: tuple[str, ...]


@dataclass(frozen=True)
class TaskShape:
    """One task shape. Subclass it in a file of its own under ``shapes/`` and register the instance
    in ``shapes/__init__.py``."""

    name: str
    columns: tuple[str, ...]  # canonical columns, in the order the trainer gets them
    # The texts that must not be shared between splits (negatives are often reused on purpose).
    group_columns: tuple[str, ...]
    losses: tuple[LossChoice, ...]  # candidates, the default first
    metrics: tuple[str, ...]  # reported test metrics, primary first, as the library's evaluators name them
    # What early stopping follows on a validation split of this shape ("loss" where no evaluator fits).
    validation_metric: str
    item_score_meaning: str  # what the per-item score of error analysis is
    item_error_meaning: str  # what the per-item error is (larger is worse, 0 is perfect)

    # --- data -------------------------------------------------------------------------------

    # Whether a row is an unordered pair: (a, b) and (b, a) are the same item (dedupe, overlap).
    symmetric_pair: ClassVar[bool] = False
    # Whether extra negative_1..negative_n columns travel with the shape's columns.
    numbered_negatives: ClassVar[bool] = False
    # Whether rows are grouped by query: splits and caps keep a query's rows together, and a corpus
    # with relevance judgements is built for evaluation.
    query_groups: ClassVar[bool] = False
    # The label names when they are fixed by the shape (None: learned from the data or data.labels).
    label_names: ClassVar[tuple[str, ...] | None] = None
    # Text columns that augmentation never rewrites (a changed one could teach the wrong thing).
    never_rewritten: ClassVar[tuple[str, ...]] = ()
    # The positive column that augmentation rewrites too when asked (include_positive).
    positive_column: ClassVar[str | None] = None
    # What rule-based synthetic pairs become: "labelled pairs", "positive pairs", "triplets", or None
    # (the shape has no place for a pair).
    synthesized_rows: ClassVar[str | None] = None
    # The label (or score) of a rule's positive and negative pairs; None: the user must give them.
    rule_label_values: ClassVar[dict[str, Any] | None] = {}
    # What a cross-encoder's silver label of a recombined pair becomes (Augmented SBERT): "score" (its
    # probability, 0..1), "binary" (0/1 at a threshold), or None (the shape has no labelled pairs).
    silver_labels: ClassVar[str | None] = None
    # The shape of unsupervised SimCSE pairs made from this shape's data (None: SimCSE does not apply).
    simcse_shape: ClassVar[str | None] = None
    # Hard-negative mining: the (anchor, positive) columns to mine for (None: cannot be mined) and the
    # (anchor, negative) columns of the negatives the data already states (None: it states none).
    mining_columns: ClassVar[tuple[str, str] | None] = None
    stated_negative_columns: ClassVar[tuple[str, str] | None] = None
    # Whether data.negatives.enabled "auto" mines this shape's train split (where it was measured to help).
    mined_by_default: ClassVar[bool] = False
    # The shape's measured recipe (None: the schema's defaults are the shape's recipe).
    recipe: ClassVar[ShapeRecipe | None] = None
    no_positives_hint: ClassVar[str] = ""  # why a frame may hold no positive pair, for the error

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in ("score", "label"))

    @property
    def label_column(self) -> str | None:
        return next((c for c in self.columns if c in ("score", "label")), None)

    @property
    def rewrite_columns(self) -> tuple[str, ...]:
        """The text columns that synonym replacement and back-translation rewrite by default."""
        return self.text_columns

    @property
    def contamination_columns(self) -> tuple[str, ...]:
        """What is looked up in an evaluation set: an unordered pair of texts (two columns) or a text."""
        return self.text_columns[:2]

    def item_keys(self, frame: pd.DataFrame, normalise: Callable[[str], str]) -> list[tuple]:
        """One key per row that says when two rows are the same item: the normalised texts of the
        shape's columns, in order; for a symmetric pair in either order."""
        if self.symmetric_pair:
            first, second = self.text_columns
            return [tuple(sorted((normalise(a), normalise(b)))) for a, b in zip(frame[first], frame[second])]
        return [tuple(normalise(v) for v in values) for values in frame[list(self.columns)].itertuples(index=False)]

    def parse_labels(self, frame: pd.DataFrame,
                     declared: list[str] | None = None) -> tuple[list[tuple[int, str, str]], pd.DataFrame]:
        """Check and parse the label (or score) column of a frame of raw strings with a ``_row``
        column: the problems as (row, column, message) and the frame with the parsed column.
        ``declared`` is the label set of data.labels. A shape without labels has nothing to check."""
        return [], frame

    def row_problems(self, frame: pd.DataFrame) -> list[tuple[int, str, str]]:
        """Rows that are well-formed but useless to this shape (a triplet whose texts repeat), as
        (row, column, message). Empty texts are reported elsewhere and skipped here."""
        return []

    def mining_rows(self, frame: pd.DataFrame, positive: bool) -> pd.DataFrame:
        """The rows that hold positive pairs (``positive``) or stated negatives for mining."""
        return frame

    def mined_shape(self, output_format: str) -> str:
        """The train split's shape after hard-negative mining in ``output_format``."""
        return "triplet" if output_format == "triplet" else "retrieval"

    # --- losses -----------------------------------------------------------------------------

    # True where the default loss scores the rest of the batch as negatives: a small batch starves it.
    in_batch_default: ClassVar[bool] = False

    @property
    def default_loss(self) -> LossChoice:
        return self.losses[0]

    def recommend_loss(self, n_train: int, batch_size: int, anchored: bool = False) -> tuple[LossChoice, str]:
        """The loss for this much data at this batch size, and why (the default unless a shape knows
        better). ``anchored``: the run trains with train.general_anchor, whose weight suits some losses."""
        if self.in_batch_default and batch_size < 32:
            return self.default_loss, (f"the default for {self.name}; note that a batch of {batch_size} gives each "
                                       f"text only {max(0, batch_size - 1)} in-batch negatives: raise "
                                       "train.batch_size if memory allows")
        return self.default_loss, f"the default for the {self.name} shape at {n_train:,} training rows"

    def loss_shape(self, train_shape: str | None) -> str:
        """The shape whose losses fit the train split: the train split's own shape ``train_shape``
        where the data stage changed it (mining turns pairs into triplets), else this one."""
        return train_shape or self.name

    def fit_loss_columns(self, dataset, loss_name: str, *, in_batch_negatives: bool,
                         labels: list[str] | None = None, seed: int = 0):
        """The split as the loss ``loss_name`` takes it (``in_batch_negatives``: that loss scores the
        rest of the batch as negatives). The trainer passes the text columns in order, and the
        column called label or score to the loss."""
        return dataset

    # --- evaluation -------------------------------------------------------------------------

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    # No labelled test split of its own: measured on the reference set, whose pairs are the test items.
    measured_on_reference: ClassVar[bool] = False
    # The test items are queries over one corpus (corpus.jsonl, queries.jsonl, qrels.jsonl).
    uses_corpus: ClassVar[bool] = False
    # Decision thresholds are chosen on the validation split (so the test set does not flatter them).
    thresholds_from_validation: ClassVar[bool] = False
    # Scored through a probe fitted on (a sample of) the train split, with the report's class names.
    probe_on_train: ClassVar[bool] = False
    # What the test items' gold values are, for the doctor's scale check: "score" (0..1), "binary" (0/1) or None.
    gold: ClassVar[str | None] = None
    # A text shared with train/validation is itself a leaked test item (the text is the whole item).
    shared_text_is_leak: ClassVar[bool] = False
    # The columns that identify a test item in the error tables.
    item_columns: ClassVar[tuple[str, ...]] = ()
    # What sentence_groups' groups are ("" where the data has no labels to colour the maps by).
    group_kind: ClassVar[str] = ""

    def build_evaluator(self, dataset, name: str, batch_size: int = 64, tables=None):
        """The sentence-transformers evaluator for a split of this shape, or None where the shape has
        none (early stopping then follows the validation loss). ``tables`` is (corpus, queries,
        relevant) for shapes that ``uses_corpus``."""
        return None

    def score(self, task, encode, boot, seed: int = 0) -> "ItemScores":
        """Metrics, their bootstrap distributions and per-item detail of one model on ``task`` (an
        evaluation TaskSet); ``encode`` maps texts to unit-length embeddings."""
        raise NotImplementedError(f"{self.name} has no per-item scoring")

    def item_texts(self, task):
        """The columns that identify each test item in the error tables."""
        return task.items[list(self.item_columns)].copy()

    def viz_sentences(self, task) -> list[str]:
        """The distinct texts drawn in the embedding maps, in a fixed order."""
        return list(dict.fromkeys(text for column in self.text_columns for text in task.items[column]))

    def sentence_groups(self, task) -> list[str]:
        """The colour group of each of viz_sentences (the group of the first item it appears in);
        all "" where the data has no labels to colour by (stage 05 clusters instead)."""
        return [""] * len(self.viz_sentences(task))

    def pair_groups(self, task):
        """For each pair in ItemScores.pair_similarity: its bucket name, and 1/0 positive/negative
        (-1 where the data has no positive/negative split); None where the shape draws no pairs."""
        raise NotImplementedError(f"{self.name} draws no pairs")

    def __str__(self) -> str:
        return self.name


class ScoringError(SttuneError, ValueError):
    """Test or train data that a shape cannot score (the message says what to change)."""


@dataclass
class ItemScores:
    """What a shape's scoring returns for one model: metrics with intervals, their bootstrap
    distributions, and per-item detail for error analysis and stage 05."""

    metrics: dict[str, dict]
    resampled: dict[str, Any]
    item_score: Any  # per item: cosine (pairs), pos - neg cosine (triplets), NDCG@10 (queries), p(gold) (classes)
    item_error: Any  # per item, larger is worse (0 is perfect)
    pair_similarity: Any = None  # the similarity of each pair drawn in stage 05
    thresholds: dict[str, float] | None = None


def first_pair_groups(items, sentences: list[str], names) -> list[str]:
    """The group of each sentence: the name of the first (sentence1, sentence2) pair it appears in."""
    first: dict[str, str] = {}
    for s1, s2, name in zip(items["sentence1"], items["sentence2"], names):
        first.setdefault(s1, name)
        first.setdefault(s2, name)
    return [first[s] for s in sentences]
