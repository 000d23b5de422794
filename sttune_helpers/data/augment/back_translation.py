"""Back-translation: round-trip texts through two pluggable :class:`Translator` objects (for
example two :class:`MarianTranslator` models, English -> German -> English) and add the rewritten
copies of a seeded fraction of the rows."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from ...core.errors import SettingError
from .common import Augmented, check_frame, combine, derived_rows, make_report, rewrite_columns, with_tags


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
    check_frame(frame, shape)
    if not 0.0 < fraction <= 1.0:
        raise SettingError(f"fraction is the share of rows to back-translate, in (0, 1]; got {fraction}")
    for which, translator in (("forward", forward), ("backward", backward)):
        if not callable(getattr(translator, "translate", None)):
            raise TypeError(f"the {which} translator needs a translate(texts: list[str]) -> list[str] method")
    rewrite = rewrite_columns(shape, include_positive, columns)
    tagged = with_tags(frame)
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
    added = derived_rows(tagged, positions, changes, "back_translation")
    settings = {"fraction": fraction, "seed": seed, "columns": list(rewrite), "forward": repr(forward),
                "backward": repr(backward)}
    report = make_report("back_translation", len(tagged), len(added), skipped, settings, texts_translated=len(sources),
                     texts_identical_dropped=len(identical), texts_empty_dropped=len(empty))
    return Augmented(combine(tagged, added), report)


def _sample_positions(n: int, fraction: float, seed: int) -> list[int]:
    if fraction >= 1.0:
        return list(range(n))
    count = math.floor(fraction * n + 0.5)
    return sorted(np.random.default_rng(seed).choice(n, size=count, replace=False).tolist())

