"""Length-grouped batches (train.batch_sampler=length_grouped): rows of similar text length share a
batch, so a batch pads to less and the model computes fewer padding tokens; composed with the
no-duplicates rule (no text twice in a batch) that in-batch-negative losses need.

Each epoch: the row indices are shuffled with the seeded generator, cut into mega-batches of
``mega_batch_factor`` x batch_size rows, each mega-batch sorted by length (below), cut into batches
(greedily skipping a row whose text is already in the batch, under the no-duplicates rule, as
sentence-transformers' NoDuplicatesBatchSampler does), and the order of the batches shuffled.

Several processes: the trainer's accelerate wrapping (BatchSamplerShard) gives process r batches r,
r + W, r + 2W, ... of the one sequence every process draws alike from the same seed. The batches are
shuffled in blocks of W consecutive batches of a sorted mega-batch, so the processes of one step get
batches of similar length and none waits long for another; incomplete batches come last.

A row's length: given the model's tokenizer (:func:`token_length_trainer_class` passes it where
training/setup.py sorts by tokens), its longest text column in tokens, cut at max_seq_length, as the
collator pads each column to its longest text; otherwise the summed character length of its text
columns. Characters are a poor proxy for tokens: on MRPC train, random batches are 31% padding,
grouped by characters 24%, by tokens 9% (STS-B: 57%, 26%, 11%; bench/RESULTS.md, session 20).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

LENGTH_GROUPED = "length_grouped"
LENGTH_GROUPED_NO_DUPLICATES = "length_grouped_no_duplicates"
# The samplers (as TrainingSetup.batch_sampler and training.json name them) that keep a text out of
# a batch that already holds it.
NO_DUPLICATE_SAMPLERS = frozenset({"no_duplicates", LENGTH_GROUPED_NO_DUPLICATES, "topic_grouped_no_duplicates"})
MEGA_BATCH_FACTOR = 50
_EXCLUDED_COLUMNS = {"dataset_name"}  # the trainer's own column, as in NoDuplicatesBatchSampler
_EXTRA_PASSES = 2  # as NoDuplicatesBatchSampler: reshuffles to reach __len__ batches with drop_last


def process_count() -> int:
    """The number of data-parallel processes, 1 outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Batches of rows of similar length; the trainer builds it with the library's sampler arguments
    (pass the class as ``batch_sampler``). ``num_processes`` defaults to torch.distributed's world size."""

    no_duplicates = False

    def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: torch.Generator | None = None, seed: int = 0,
                 mega_batch_factor: int = MEGA_BATCH_FACTOR, num_processes: int | None = None,
                 tokenizer=None, max_length: int | None = None) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        if mega_batch_factor < 1:
            raise ValueError(f"mega_batch_factor must be >= 1, got {mega_batch_factor}")
        self.dataset = dataset
        self.mega_batch_factor = mega_batch_factor
        self.num_processes = max(1, num_processes or process_count())
        skipped = set(valid_label_columns or []) | _EXCLUDED_COLUMNS
        columns = [c for c in dataset.column_names if c not in skipped]
        self.lengths, self.row_values = row_lengths_and_values(dataset, columns, self.no_duplicates, tokenizer,
                                                               max_length)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        if len(self.lengths) == 0:
            return
        generator = self.generator if self.generator is not None else torch.Generator()
        generator.manual_seed((self.seed or 0) + self.epoch)
        expected, yielded = len(self), 0
        for one_pass in range(1 + (_EXTRA_PASSES if self.no_duplicates and self.drop_last else 0)):
            for batch in self.one_pass(generator):
                if one_pass and yielded >= expected:
                    return
                yield batch
                yielded += 1
            if yielded >= expected:
                return

    def one_pass(self, generator: torch.Generator) -> list[list[int]]:
        """One shuffle of the dataset into batches, in the order they are to be taken."""
        order = self.row_order(generator)
        batches = self.no_duplicate_batches(order) if self.no_duplicates else \
            [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        partial = [] if self.drop_last else [b for b in batches if len(b) < self.batch_size]
        # One block: the batches the processes take in one step, from the same stretch of sorted rows.
        width = self.num_processes
        n_blocks = len(full) // width
        shuffled = torch.randperm(n_blocks, generator=generator).tolist()
        ordered = [batch for block in shuffled for batch in full[block * width:(block + 1) * width]]
        return ordered + full[n_blocks * width:] + partial

    def row_order(self, generator: torch.Generator) -> np.ndarray:
        """The order in which rows are cut into batches (subclasses group rows otherwise)."""
        return self.length_sorted_order(generator)

    def length_sorted_order(self, generator: torch.Generator) -> np.ndarray:
        """The row indices shuffled, then sorted by length within each mega-batch."""
        shuffled = torch.randperm(len(self.lengths), generator=generator).numpy()
        size = self.mega_batch_factor * self.batch_size
        chunks = [shuffled[i:i + size] for i in range(0, len(shuffled), size)]
        return np.concatenate([chunk[np.argsort(self.lengths[chunk], kind="stable")] for chunk in chunks])

    def no_duplicate_batches(self, order: np.ndarray) -> list[list[int]]:
        """Batches taken greedily along ``order``: a row whose text is already in the batch waits for a
        later one (kept near the front of the remaining rows, so it stays with rows of similar length)."""
        n = len(order)
        following = np.arange(1, n + 1, dtype=np.int64)
        following[-1] = -1
        head = 0
        batches = []
        while head != -1:
            batch: list[int] = []
            seen: set[int] = set()
            position, previous = head, -1
            while position != -1:
                after = int(following[position])
                index = int(order[position])
                values = self.row_values[index]
                if not seen.isdisjoint(values):
                    previous, position = position, after
                    continue
                batch.append(index)
                if previous == -1:
                    head = after
                else:
                    following[previous] = after
                if len(batch) == self.batch_size:
                    break
                seen.update(values)
                position = after
            batches.append(batch)
        return batches


class LengthGroupedNoDuplicatesBatchSampler(LengthGroupedBatchSampler):
    """Length-grouped batches with no text twice in a batch, for in-batch-negative losses."""

    no_duplicates = True


SAMPLER_CLASSES = {LENGTH_GROUPED: LengthGroupedBatchSampler,
                   LENGTH_GROUPED_NO_DUPLICATES: LengthGroupedNoDuplicatesBatchSampler}


def trainer_batch_sampler(name: str):
    """What SentenceTransformerTrainingArguments.batch_sampler takes for a TrainingSetup.batch_sampler
    name: one of this file's classes, or the name of one of the library's own samplers."""
    return SAMPLER_CLASSES.get(name, name)


def token_length_trainer_class(base: type) -> type:
    """A subclass of the trainer class ``base`` that gives its length-grouped batch sampler the model's
    tokenizer and the collator's cut, so rows are sorted by the tokens the collator will pad."""

    class TokenLengthTrainer(base):
        def get_batch_sampler(self, dataset, batch_size: int, drop_last: bool,
                              valid_label_columns: list[str] | None = None, generator: torch.Generator | None = None,
                              seed: int = 0):
            sampler = self.args.batch_sampler
            if inspect.isclass(sampler) and issubclass(sampler, LengthGroupedBatchSampler):
                return sampler(dataset, batch_size=batch_size, drop_last=drop_last,
                               valid_label_columns=valid_label_columns, generator=generator, seed=seed,
                               tokenizer=self.model.tokenizer, max_length=training_cut(self))
            return super().get_batch_sampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)

    return TokenLengthTrainer


def training_cut(trainer) -> int | None:
    """The tokens per text the trainer's collator keeps: its own cut (train.max_seq_length) or the model's."""
    return getattr(trainer.data_collator, "max_length", None) or trainer.model.max_seq_length


_TOKENIZE_CHUNK = 10_000  # texts per tokenizer call: bounds the ids held at once


def token_counts(texts: list[str], tokenizer, max_length: int | None) -> np.ndarray:
    """Each text's token count as the collator makes it (special tokens included, cut at ``max_length``)."""
    counts = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        chunk = texts[start:start + _TOKENIZE_CHUNK]
        ids = tokenizer(chunk, truncation=max_length is not None, max_length=max_length)["input_ids"]
        counts[start:start + len(chunk)] = [len(i) for i in ids]
    return counts


def row_lengths_and_values(dataset, columns: list[str], with_values: bool, tokenizer=None,
                           max_length: int | None = None) -> tuple[np.ndarray, list | None]:
    """Each row's length (with ``tokenizer``: its longest column in tokens, cut at ``max_length``;
    without: its summed character length over ``columns``), and (where ``with_values``) each row's
    texts as integer ids, equal texts (in any column) sharing an id."""
    n = len(dataset)
    lengths = np.zeros(n, dtype=np.int64)
    ids: dict[str, int] = {}
    rows: list[list[int]] | None = [[] for _ in range(n)] if with_values else None
    for column in columns:
        texts = [value if isinstance(value, str) else str(value) for value in dataset[column]]
        if tokenizer is not None:
            lengths = np.maximum(lengths, token_counts(texts, tokenizer, max_length))
        else:
            lengths += np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
        if rows is not None:
            for row, text in zip(rows, texts):
                row.append(ids.setdefault(text, len(ids)))
    return lengths, [tuple(r) for r in rows] if rows is not None else None
