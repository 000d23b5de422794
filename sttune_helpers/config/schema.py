"""RunConfig: one typed tree of every setting of every stage, with each section's defaults.

A run is a preset or a user's YAML file plus dotted-key overrides such as
``train.learning_rate=3e-5``. Every key and type is checked (coercion.py), so a typo fails loudly
with the key's name instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

import yaml

from ..shapes import SHAPES
from .budget import parse_budget
from .coercion import ConfigError, _build, _is_open_dict, _override_items, _unknown_key
from .ranges import check_ranges
from .search import SearchParam, search_params

# "auto" or a registered shape: a new file in shapes/ is a valid data.shape without touching this one.
TaskShape = Literal[("auto", *SHAPES)]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Pooling = Literal["model", "mean", "max", "cls"]
BatchSampler = Literal["auto", "batch_sampler", "no_duplicates", "length_grouped", "topic_grouped"]
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]


@dataclass
class NegativesConfig:
    """Hard negatives for the train split (pair_binary, triplet and retrieval data)."""

    # "auto": on for the shapes where mining was measured to help (retrieval: shapes' mined_by_default).
    enabled: Union[bool, Literal["auto"]] = "auto"
    # "embedding" (sentence_transformers.util.mine_hard_negatives with the base model), "lexical"
    # (keyword overlap: bm25 or tfidf) or "both".
    candidates: Literal["embedding", "lexical", "both"] = "embedding"
    lexical_method: Literal["bm25", "tfidf"] = "bm25"
    num_negatives: int = 1
    # The rank window of candidates (0 = the most similar non-positive).
    range_min: int = 0
    range_max: int = 50
    # False-negative filters: drop a candidate scoring above (1 - relative_margin) x the positive's
    # score, above the positive's score minus absolute_margin, or above max_score.
    relative_margin: Optional[float] = 0.05
    absolute_margin: Optional[float] = None
    max_score: Optional[float] = None
    sampling_strategy: Literal["top", "random"] = "top"
    # An anchor whose window holds too few candidates that pass the filters (often one the base model
    # ranks badly, so a hard pair) takes the best-scoring ones below range_max that do; false: as
    # mine_hard_negatives, its pairs get fewer negatives, and a pair with none leaves training (warned).
    fill_below_window: bool = True
    # "triplet": (anchor, positive, negative) rows; "n-tuple": anchor, positive, negative_1..n.
    output_format: Literal["triplet", "n-tuple"] = "triplet"
    batch_size: int = 64
    # Encoding for the mining: "auto" is bf16 where training would pick it (a CPU with AMX or AMD's
    # AVX512-BF16, a GPU with bf16), else fp32. Similarities stay within ~2e-3 of fp32's, and mining
    # runs ~1.8x faster. With eval.cache_embeddings a corpus's vectors are kept for the next run.
    precision: Literal["auto", "bf16", "fp32"] = "auto"


@dataclass
class AugmentConfig:
    """Augmentation and synthetic pairs, applied to the train split only; every added row is tagged."""

    synonyms: bool = False
    # "embedding": neighbours in the model's own token-embedding space (no download); "wordnet":
    # nltk's WordNet (needs `python -m nltk.downloader wordnet`).
    synonym_source: Literal["embedding", "wordnet"] = "embedding"
    synonym_rate: float = 0.15  # fraction of the eligible words replaced
    synonym_copies: int = 1
    back_translation: bool = False
    # Translation models (hub names or local paths), e.g. Helsinki-NLP/opus-mt-en-de and -de-en.
    translator_forward: Optional[str] = None
    translator_backward: Optional[str] = None
    back_translation_fraction: float = 1.0
    # Unlabeled text -> (text, text) pairs for an in-batch-negative loss; dropout is the noise.
    simcse: bool = False
    # Rules that make synthetic pairs: regex substitutions, keyword swaps, templates (see augment.py).
    rules: list[dict[str, Any]] = field(default_factory=list)
    max_pairs_per_rule: int = 500
    # Augmented SBERT (pair_score, pair_binary): a cross-encoder trained on the train pairs labels
    # recombined pairs of the train sentences (each one's top-k neighbours) as silver pairs. No
    # sentence of validation or test enters a silver pair.
    augmented_sbert: bool = False
    # "semantic": neighbours by the base model's cosine; "bm25": by keyword overlap.
    augmented_sbert_sampling: Literal["semantic", "bm25"] = "semantic"
    augmented_sbert_top_k: int = 3
    augmented_sbert_max_pairs: Optional[int] = None  # a seeded sample above this; None keeps all
    # pair_binary: a silver pair is labelled 1 where the cross-encoder's probability reaches this.
    augmented_sbert_threshold: float = 0.5
    # The cross-encoder's starting model (a bi-encoder checkpoint gets a fresh head); None: model.name.
    cross_encoder_model: Optional[str] = None
    # 4, not the library example's 1: on 1,000 STS-B pairs one epoch left the cross-encoder at 0.54
    # validation Spearman (no gain from its labels), four at 0.80 (bench/RESULTS.md, session 12).
    cross_encoder_epochs: float = 4.0
    cross_encoder_batch_size: int = 16
    cross_encoder_learning_rate: float = 2e-5


@dataclass
class DataConfig:
    # "embedded:stsb" (ships with the package; "embedded:stsb:test" is one split), a file with all
    # rows (split here), a folder holding train / dev (or validation) / test files, a folder saved
    # with datasets' save_to_disk, or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/).
    source: str = "embedded:stsb"
    # user column name -> canonical name (sentence1, sentence2, score, label, anchor, positive,
    # negative, text); common names such as premise/hypothesis or query/answer are found anyway.
    columns: dict[str, str] = field(default_factory=dict)
    # "auto" detects the shape from the columns and values and says why.
    shape: TaskShape = "auto"
    # [low, high] of the raw scores; None detects it from the data (0-1, 0-4, 0-5, 1-5).
    score_range: Optional[list[float]] = None
    # The declared label set of pair_class data (None: the labels found in train).
    labels: Optional[list[str]] = None
    # "normalized" also catches case, whitespace and punctuation variants and swapped pairs (b, a).
    deduplicate: Literal["off", "exact", "normalized"] = "normalized"
    # What to do with invalid rows: "error" stops and names them, "drop" drops and reports them.
    on_invalid: Literal["error", "drop"] = "error"
    # A column of the source whose rows must stay in one split (e.g. a premise id, a topic).
    group_by: Optional[str] = None
    # Used only when the source has no split of its own.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # Given splits that share items (STS-B has 12 train-test pairs) are reported; true removes
    # them from train (and validation), leaving the test split as published.
    remove_cross_split_overlap: bool = False
    # Evaluation sets (paths or embedded:NAME[:SPLIT]) whose pairs and texts are dropped from the
    # training data.
    decontaminate: list[str] = field(default_factory=list)
    # Caps for quick runs (None keeps every row); taken after cleaning, seeded.
    max_train_rows: Optional[int] = None
    max_validation_rows: Optional[int] = None
    max_test_rows: Optional[int] = None
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    # "default" is the packaged all-MiniLM-L6-v2; otherwise a local path or a hub name.
    name: str = "default"
    max_seq_length: Optional[int] = None
    device: Device = "auto"
    # "model" keeps the model's own pooling; mean, max and cls rebuild it on the same transformer.
    pooling: Pooling = "model"
    # Dropout of the transformer's hidden layers and attention weights; None keeps the model's own.
    hidden_dropout: Optional[float] = None
    attention_dropout: Optional[float] = None


@dataclass
class LossConfig:
    # A sentence-transformers loss class name; None takes the task shape's default.
    name: Optional[str] = None
    # Keyword arguments for the loss class (e.g. {"margin": 0.5}).
    params: dict[str, Any] = field(default_factory=dict)
    # Softmax temperature of the contrastive and ranking losses (scale = 1 / temperature); None keeps
    # the loss's own default (scale 20, i.e. temperature 0.05; GISTEmbedLoss 0.01).
    temperature: Optional[float] = None
    # Wrap the loss in MatryoshkaLoss over these embedding sizes (e.g. [384, 256, 128, 64]).
    matryoshka_dims: Optional[list[int]] = None
    # Before training, train each of the shape's losses for bake_off_steps on bake_off_train_rows
    # rows, score them on the validation split, and train with the winner.
    bake_off: bool = False
    bake_off_steps: int = 100
    bake_off_train_rows: Optional[int] = 2000


@dataclass
class TrainConfig:
    learning_rate: float = 2e-5
    batch_size: int = 16
    epochs: float = 4.0
    max_steps: Optional[int] = None  # overrides epochs when set
    # A wall-clock budget for training, the search before it and model selection after it, such as
    # "20m", "90s" or "1h30m". When set, stage 02 runs the automatic recipe (training/auto_recipe.py):
    # short proxy runs choose the loss, learning_rate and batch_size, and max_steps is set so that
    # training fits the rest of the budget (never beyond epochs). None: train as configured.
    budget: Optional[str] = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    scheduler: Scheduler = "linear"
    gradient_accumulation_steps: int = 1
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    # "auto": no duplicate texts within a batch for in-batch-negative losses (a duplicate would be
    # scored as a negative of itself); length-grouped batches for CosineSimilarityLoss, CoSENTLoss and
    # OnlineContrastiveLoss (measured faster at no cost in accuracy, training/setup.py); the plain
    # sampler otherwise. "length_grouped": rows of similar length share a batch (less padding,
    # training/samplers.py; by tokens, or characters for the losses that scored better so), with no
    # duplicate texts in a batch for in-batch-negative losses. "topic_grouped" (in-batch-negative losses
    # only): anchors that k-means puts in one cluster (base-model embeddings) share a batch, so the
    # batch's other rows are harder negatives at no extra text per row (training/topic_batches.py).
    batch_sampler: BatchSampler = "auto"
    # Tokens per text in the training steps (the data collator's cut); validation, model selection and
    # evaluation encode at model.max_seq_length. Long documents train faster cut shorter; None: as the model.
    max_seq_length: Optional[int] = None
    # Validation runs this many times per epoch; checkpoints are saved at the same points.
    evaluations_per_epoch: int = 2
    # Retrieval: validation (training's evaluator and model selection) ranks against a sub-corpus of
    # this many documents where the corpus is larger: every document relevant to a validation query plus
    # distractors the data stage mines with the base model (each query's top documents in turn);
    # "auto": 5 times the relevant documents, at least 1,000 (measured to rank models as the whole
    # corpus does); None: the whole corpus. Test: always the whole corpus.
    validation_corpus_size: Union[int, Literal["auto"], None] = "auto"
    # "auto": validation, and after training the best-or-last comparison and model selection, encode
    # in bf16 autocast where training runs in bf16; "fp32" forces fp32.
    validation_precision: Literal["auto", "fp32"] = "auto"
    # After the first validation, where it took over 1.25 x this share of the training time,
    # evaluations (and the checkpoints saved with them) are spaced out to a whole multiple of their
    # interval that keeps validation within the share. The tolerance and the multiples make a re-run
    # of a seed evaluate at the same steps (training/validation_budget.py); None: never spaced out.
    max_validation_share: Optional[float] = 0.1
    early_stopping_patience: Optional[int] = 3  # None disables early stopping
    early_stopping_threshold: float = 0.0
    # The validation metric for early stopping and the best checkpoint, as the evaluator names it
    # without the split prefix (e.g. "spearman_cosine", "cosine_ap", "ndcg@10", "loss"); None takes
    # the task shape's primary metric.
    early_stopping_metric: Optional[str] = None
    # Which model training ends with, where the best validation checkpoint is not the last one:
    # "if_significant" restores the best only where a paired bootstrap on the validation split says it
    # beats the last model (the interval of the difference above 0 at 1 - (1 - eval.confidence) / k for
    # the k earlier validation points it was the best of: Bonferroni), else keeps the last, more trained
    # one (on a small validation split the best is mostly noise); "always" restores the best (the
    # library's load_best_model_at_end); "never" keeps the last.
    restore_best: Literal["if_significant", "always", "never"] = "if_significant"
    # Stop when the training loss is NaN or infinite, or the embeddings collapse: the mean pairwise
    # cosine of a fixed probe set of validation texts above this (None turns the collapse check off).
    stop_on_nan: bool = True
    collapse_threshold: Optional[float] = 0.98
    logging_steps: int = 25
    save_total_limit: int = 2
    # Processes for data-parallel training (torchrun; one per GPU, or CPU processes with gloo);
    # 1 trains in this process. batch_size is per process: the global batch is batch_size x nproc
    # x gradient_accumulation_steps.
    nproc: int = 1
    # Machines (nodes) training one run together, nproc processes on each (the global batch is
    # batch_size x nproc x nnodes x gradient_accumulation_steps). With nnodes > 1 every node runs
    # `sttune train` on the same run directory (a shared filesystem) with its own node_rank, 0 to
    # nnodes - 1, and the same rdzv_endpoint: host:port of node 0, where torchrun's c10d rendezvous
    # listens. A node waits at most rdzv_timeout seconds there for the others before failing, and a
    # rank as long for the other ranks to get ready to train (one failing as it starts stops them). Only
    # `sttune train` starts several nodes; `sttune run` and the notebooks refuse nnodes > 1.
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: Optional[str] = None
    rdzv_timeout: int = 600
    # Regularisers that keep the fine-tuned model near its base (off by default).
    # L2-SP: add this weight x the squared distance of the trainable weights from their starting values
    # to the training loss; None (or 0) turns it off.
    l2sp_weight: Optional[float] = None
    # A task prompt: prepended to every text of the task in training, validation and test, and saved with
    # the model as its default prompt ("task"), so model.encode(texts) applies it and
    # model.encode(texts, prompt="") encodes without it. The general reference is scored without it.
    task_prompt: Optional[str] = None
    # With a task prompt, hold the model's general use in place: add this weight x mean(1 - cos(e, e0))
    # over 16 training texts a step, encoded WITHOUT the prompt, e0 the base model's embedding of each
    # (losses/general_anchor.py). The task is learnt behind the prompt; the unprompted model stays near
    # the base. None (or 0) turns it off; it needs train.task_prompt.
    general_anchor: Optional[float] = None
    # How many training texts the anchor encodes a step (neighbours in length): its cost is a forward
    # and backward over these on top of the task's batch.
    general_anchor_texts: int = 16
    # The anchor on every k-th training batch only (with gradient accumulation, every k-th micro-batch), at
    # k times its weight: the same pull summed over k batches at 1/k of its cost (each anchor pass has a
    # fixed part, whatever its texts). 1: every batch.
    general_anchor_every: int = 1
    # The data shape's measured recipe (its ``recipe`` in shapes/, figures in bench/RESULTS.md): stage 02
    # fills the settings it names where this config leaves them at their defaults and neither a sweep nor
    # train.budget's search chooses them, unless loss.name names a loss it was not measured with; plan.json
    # says what it did. pair_binary: the task prompt "task: ", general_anchor 10 over 8 texts on every second
    # step, learning rate 8e-5 and batch size 32 (OnlineContrastiveLoss, CoSENTLoss). false keeps every
    # setting as given.
    shape_recipe: bool = True
    # LoRA: train low-rank adapters of this rank on the encoder's attention and feed-forward layers
    # instead of every weight, merged into the model before it is saved; None = full fine-tuning.
    # LoRA usually wants a higher learning rate (~2e-4).
    lora_rank: Optional[int] = None
    lora_alpha: Optional[float] = None  # the adapters' scaling numerator; None = 2 x lora_rank
    lora_dropout: float = 0.0  # dropout on the adapters' input, in [0, 1)


@dataclass
class EvalConfig:
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    batch_size: int = 64
    # Encoding for the measurement. fp32 by default: the reported figures are exact. "auto" or "bf16"
    # encode in bf16 autocast where training would use it (~1.8x faster on a CPU with AMX, ~1.6x on
    # an AMD Zen 4; cosines within ~2e-3 of fp32), worth it for a large corpus.
    precision: Literal["fp32", "auto", "bf16"] = "fp32"
    # The general-ability reference (the report half, and the interpolation sweep's) in bf16 where
    # training would use it: every model is scored alike, so a drop compares like with like; bf16 moved
    # the drops of six models by at most 0.001 (their intervals are about +-0.008) in 0.6x the time on
    # a Zen 4 (bench/RESULTS.md, session 37). "fp32": the exact figures; "bf16": always.
    reference_precision: Literal["fp32", "auto", "bf16"] = "auto"
    # Keep the embeddings of each scoring in RUNS_DIR/.cache/embeddings (scoring/embedding_cache.py), so
    # that the base model is not encoded again in the next run on the same data, nor any model when the
    # evaluation stage runs again. Keyed by the weights and every encoding setting; at most 1 GiB.
    cache_embeddings: bool = True
    # More models in the comparison table: name -> a model path, a hub name, or another run's directory.
    extra_models: dict[str, str] = field(default_factory=dict)
    # The general-ability reference (scoring/reference.py): general STS and retrieval sets shipped with
    # the package, leaving out any built from the run's own training source; its selection half is
    # used by model selection, its report half by the evaluation stage.
    reference: bool = True
    reference_max_pairs: Optional[int] = None  # a seeded subsample of each part's pairs or queries; None: all
    # The retrieval part's corpus cut to this many documents: every one relevant to its queries plus
    # seeded random distractors (NanoBEIR-style; scores rise as the corpus shrinks). None: the whole corpus.
    reference_corpus_size: Optional[int] = None
    # Also score the pure fine-tuned model (before_selection, where selection chose another) on the
    # reference: what selection kept of general ability, at one more pass over the report half (about
    # 55 s at 600 items on a 2-core CPU). On where eval.interpolation_alphas is set (the sweep needs it).
    reference_before_selection: bool = False
    # Model selection after training, on the validation split and the selection half of the
    # general-ability reference (never test). Candidates: the last model, the best checkpoint, a
    # uniform soup of the last soup_size validation points (those of the last third of training),
    # and the best of these mixed with the base weights at each of selection_alphas (WiSE-FT),
    # chosen by selection_rule.
    # model/ holds the choice, model_finetuned/ the pure fine-tuned model where they differ.
    # False keeps train.restore_best's model.
    select_model: bool = True
    # fine_tuned_unless_beaten: the pure fine-tuned model (train.restore_best's), unless a candidate beats
    # it on validation beyond the noise (paired bootstrap, at the family-wise level over the candidates:
    # 1 - (1 - confidence) / their number, Bonferroni), as restore_best="if_significant" keeps the
    # last model; where it breaks max_forgetting, as best_validation. It scores the mixes from the highest
    # alpha down and stops at the first below the one above it (validation is concave in alpha; the
    # lower ones are scored where the fine-tuned model breaks max_forgetting). bench/RESULTS.md (2026-12-05,
    # session 18, full STS-B, 3 seeds): best_validation took mixes that were 0.002 better on validation
    # (within the noise) and 0.002-0.009 worse on test.
    # best_validation: the best validation metric among the candidates that keep to max_forgetting.
    # most_general: among those within the noise of the best validation metric (paired bootstrap), the
    # one that keeps the most general ability. bench/RESULTS.md (2026-12-05, 3 seeds, 2,500 pairs of
    # STS-B and of SNLI): best_validation ties the plain recipe on the task and forgets less; most_general
    # forgets least but gives up 0.004 of the task on both sets.
    selection_rule: Literal["fine_tuned_unless_beaten", "best_validation", "most_general"] = "fine_tuned_unless_beaten"
    selection_alphas: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.85])
    soup_size: int = 3
    # Score every candidate within the validation noise of the best on the reference, for the
    # task-vs-general plot, also where the rule needs fewer (best_validation: down the validation
    # ranking to the first within max_forgetting, usually one). Each costs a pass over the reference's
    # selection half (30-40 s on a 2-core CPU, most of it the retrieval part's 1,021 passages).
    selection_plot_all: bool = False
    # The largest drop from the base model on any part of the reference that the chosen model may
    # show (None: no budget). 0.05 from bench/RESULTS.md (SNLI transfer, CPU, 3 seeds): the fine-tuned
    # model lost 0.063 on both parts; 0.05 picks the 0.85 or 0.7 mix, which halves that (0.032-0.035)
    # for 0.0095 of the task's 0.074 gain; 0.01 would force the 0.5 mix and cost 0.027 of it.
    max_forgetting: Optional[float] = 0.05
    # A diagnostic on the test split, off by default: weight interpolation base -> fine-tuned at these
    # alphas; final_alpha saves that mix as model_final/. Model selection already chose among such
    # mixes on validation; choosing from the test-set sweep makes the test figures optimistic.
    interpolation_alphas: list[float] = field(default_factory=list)
    final_alpha: Optional[float] = None
    # pair_class: the accuracy of a logistic-regression probe on (u, v, |u-v|) trained on this many train rows.
    probe_train_rows: int = 5000
    error_rows: int = 10  # rows per error-analysis table


@dataclass
class VizConfig:
    max_points: int = 2000  # sentences drawn in the UMAP, subsampled with the run's seed
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: Optional[int] = None  # UMAP's optimisation epochs; None lets UMAP choose (500 for small data)
    n_clusters: int = 8  # KMeans clusters that colour the maps when the data has no labels


@dataclass
class SweepConfig:
    """An Optuna search over other keys of this config (`sttune sweep`, sweep.py); `sttune run` ignores it."""

    study_name: Optional[str] = None  # None: the sweep's name (its folder in the runs directory)
    # Any SQLAlchemy URL; several machines given one URL and one study name work on one study.
    # None: sqlite:///RUNS_DIR/<sweep>/study.db
    storage: Optional[str] = None
    trials: int = 20
    # "auto": maximize or minimize as the validation metric (train.early_stopping_metric) is better.
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    # Stop a trial early (MedianPruner) when its validation metric at an evaluation is worse than the
    # median of earlier trials at the same evaluation.
    pruning: bool = True
    # The trials' checkpoints/ are deleted after each trial (model/ keeps the best) unless this is true.
    keep_checkpoints: bool = False
    # Dotted config key -> {low, high[, log][, step]} (a float or int range, as the key's type) or
    # {choices: [...]}; see SWEEP_SPACE_EXAMPLE.
    space: dict[str, dict[str, Any]] = field(default_factory=dict)


SWEEP_SPACE_EXAMPLE = """\
sweep:
  trials: 20
  space:
    train.learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}
    train.batch_size: {choices: [16, 32, 64]}
    train.warmup_ratio: {low: 0.0, high: 0.2}
    train.weight_decay: {low: 0.0, high: 0.1}
    loss.temperature: {low: 0.02, high: 0.1, log: true}
    train.epochs: {low: 1, high: 4, step: 1}
    loss.name: {choices: [CoSENTLoss, CosineSimilarityLoss]}"""


def check_task_prompt(train: TrainConfig, source: str = "config") -> None:
    """train.task_prompt holds some text where given, and train.general_anchor needs it: anchoring the
    task's own texts to the base model without a prompt pulls against the task itself."""
    prompt = train.task_prompt
    if prompt is not None and not prompt.strip():
        raise ConfigError(f"{source}: train.task_prompt: {prompt!r} holds no text; expected a prompt such as "
                          "'task: ', or null for none")
    if train.general_anchor and prompt is None:
        # A shape's recipe may fill the prompt, but only in stage 02, once the data's shape is known.
        recipe = (" (a shape's recipe, train.shape_recipe, fills its prompt only in stage 02, once the data's shape "
                  "is known: name the prompt with the anchor)") if train.shape_recipe else ""
        raise ConfigError(f"{source}: train.general_anchor: {train.general_anchor:g} needs train.task_prompt (e.g. "
                          "'task: '): the anchor holds the unprompted model near the base while the task is learnt "
                          f"behind the prompt; without one it pulls against the task{recipe}")


@dataclass
class RunConfig:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    # --- conversions -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        train = raw.get("train") if isinstance(raw, dict) else None
        if isinstance(train, dict) and train.get("budget") is not None:
            parse_budget(train["budget"])  # "20m", not 20: the error names the form, before the type check
        config = _build(cls, raw, prefix="", source=source)
        check_ranges(config, source)  # every number in its range (config/ranges.py), naming the key
        check_task_prompt(config.train, source)
        cls.search_space(config.sweep.space, source)  # a bad sweep space fails here, naming its key
        return config

    @classmethod
    def search_space(cls, space: dict[str, Any], source: str = "config") -> list[SearchParam]:
        """``sweep.space`` as typed dimensions, each key checked against this config's types."""
        return search_params(space, cls, source)

    def with_overrides(self, overrides: dict[str, Any] | list[str] | None) -> "RunConfig":
        """A copy with dotted-key overrides applied: {"train.learning_rate": 3e-5} or
        ["train.learning_rate=3e-5"]. Values given as strings are parsed as YAML, then typed."""
        raw = self.to_dict()
        for key, value in _override_items(overrides):
            node = raw
            parts = key.split(".")
            for i, part in enumerate(parts[:-1]):
                if not isinstance(node.get(part), dict):
                    _unknown_key(".".join(parts[: i + 1]), node, ".".join(parts[:i]), "override")
                node = node[part]
            last = parts[-1]
            if last not in node and not _is_open_dict(type(self), parts[:-1]):
                _unknown_key(key, node, ".".join(parts[:-1]), "override")
            node[last] = value
        return RunConfig.from_dict(raw, source="override")
