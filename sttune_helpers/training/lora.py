"""LoRA fine-tuning (train.lora_rank): adapters injected with peft into the transformer, every other
weight frozen; checkpoints saved as plain models with the adapter weights beside them (so they load
anywhere, and resume and the best-checkpoint restore reload the adapters); the adapters merged into
the base weights before the model is saved, leaving the base's state-dict keys.

peft's ``inject_adapter_in_model``, not ``SentenceTransformer.add_adapter``: transformers 5.2x
refuses peft < 0.22 there, and 0.21.2 is the newest release."""

from __future__ import annotations

import contextlib
import copy
import re
from pathlib import Path
from typing import Any

from ..config import check_value
from ..core.reporting import get_logger
from .errors import TrainingError

log = get_logger(__name__)

# A BERT-like encoder's attention query/key/value/output and feed-forward dense layers; a model with
# none of these names gets peft's "all-linear".
BERT_TARGETS = (r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
                r"|intermediate\.dense|output\.dense)")
ADAPTER_FILE = "lora_adapter.safetensors"  # beside each checkpoint's (merged, plain) model weights
LORA_SUGGESTED_LR = 2e-4


def check_lora(train) -> None:
    """A SettingError naming the key of a LoRA setting out of its range (config/ranges.py)."""
    for name in ("lora_rank", "lora_alpha", "lora_dropout"):
        check_value(f"train.{name}", getattr(train, name))


def _transformer(model):
    transformer = model[0]
    auto_model = getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)
    if auto_model is None:
        raise TrainingError("train.lora_rank: the model's first module holds no transformer to add adapters to")
    return auto_model


def target_modules(auto_model) -> str:
    """BERT_TARGETS where the transformer has such layers, else "all-linear"."""
    pattern = re.compile(BERT_TARGETS)
    return BERT_TARGETS if any(pattern.fullmatch(name) for name, _ in auto_model.named_modules()) else "all-linear"


def add_lora(model, train, seed: int) -> dict[str, Any] | None:
    """Inject LoRA adapters into ``model``'s transformer and freeze every other weight of the model;
    returns the settings as training.json records them (None where train.lora_rank is unset). The
    adapters' random initialisation is seeded with ``seed``: a run is repeatable."""
    check_lora(train)
    if train.lora_rank is None:
        return None
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import set_seed

    auto_model = _transformer(model)
    rank = int(train.lora_rank)
    alpha = float(train.lora_alpha) if train.lora_alpha is not None else 2.0 * rank
    targets = target_modules(auto_model)
    set_seed(seed)  # the trainer seeds again when it starts
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=train.lora_dropout,
                                       target_modules=targets), auto_model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)
    layers = len(lora_layers(model))
    if not layers:
        raise TrainingError(f"train.lora_rank: no layer of the model matched the LoRA targets {targets!r}")
    if train.learning_rate < 1e-4:
        log.info(f"LoRA (train.lora_rank={rank}) usually wants a higher learning rate than full fine-tuning: "
                 f"train.learning_rate is {train.learning_rate:g}; try ~{LORA_SUGGESTED_LR:g}")
    return {"rank": rank, "alpha": alpha, "dropout": float(train.lora_dropout),
            "target_modules": targets, "adapted_layers": layers}


def lora_layers(model) -> list[tuple[str, Any]]:
    """(name, module) of every LoRA-wrapped layer in ``model``."""
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def _replace(model, name: str, new) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _merged_copy(module):
    """A copy of the LoRA layer's base layer holding base + the adapters' delta (new tensors)."""
    import torch

    base = module.get_base_layer()
    plain = copy.deepcopy(base)
    with torch.no_grad():
        delta = sum(module.get_delta_weight(name) for name in module.active_adapters if name in module.lora_A)
        plain.weight.data = (base.weight + delta).to(base.weight.dtype)
    return plain


@contextlib.contextmanager
def plain_layers(model):
    """Within the block the LoRA layers are replaced by plain copies with the adapters merged in
    (the model then has the base's state-dict keys); afterwards the LoRA layers are back, untouched."""
    layers = lora_layers(model)
    for name, module in layers:
        _replace(model, name, _merged_copy(module))
    try:
        yield model
    finally:
        for name, module in layers:
            _replace(model, name, module)


def merge_lora(model) -> int:
    """Merge the adapters into the base weights for good and drop the LoRA layers: ``model`` is a
    plain model again, with the base's state-dict keys, every weight trainable. Returns the layers merged."""
    layers = lora_layers(model)
    for name, module in layers:
        module.merge(safe_merge=True)
        _replace(model, name, module.get_base_layer())
    auto_model = _transformer(model)
    if hasattr(auto_model, "peft_config"):
        del auto_model.peft_config
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return len(layers)


def adapter_state(model) -> dict:
    return {name: p.detach().contiguous() for name, p in model.state_dict().items() if ".lora_" in name}


def save_adapter(model, folder) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / ADAPTER_FILE
    save_file({k: v.cpu() for k, v in adapter_state(model).items()}, str(path))
    return path


def load_adapter(model, folder) -> None:
    """Load a checkpoint's adapter weights into ``model``'s LoRA layers (the frozen base weights are
    the base model's, as at the checkpoint); a TrainingError where they do not fit."""
    from safetensors.torch import load_file

    path = Path(folder) / ADAPTER_FILE
    if not path.is_file():
        raise TrainingError(f"checkpoint {folder} has no LoRA adapter ({ADAPTER_FILE}): it was saved without "
                            "train.lora_rank. Resume with the settings it was trained with, or train from the start")
    saved = load_file(str(path))
    expected = adapter_state(model)
    if set(saved) != set(expected) or any(saved[k].shape != expected[k].shape for k in saved):
        raise TrainingError(f"the LoRA adapter of checkpoint {folder} does not fit this model's adapters (other "
                            "train.lora_rank or target layers?): resume with the settings it was trained with")
    model.load_state_dict(saved, strict=False)  # the adapters only: the keys were checked above


def lora_trainer_class(base: type) -> type:
    """A subclass of the trainer class ``base`` whose checkpoints are plain models (adapters merged
    in copies) plus ADAPTER_FILE, and which reloads the adapters from a checkpoint (resume, best model)."""

    class LoraTrainer(base):
        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            output_dir = output_dir if output_dir is not None else self.args.output_dir
            with plain_layers(self.model):
                super()._save(output_dir)
            save_adapter(self.model, output_dir)

        def _load_from_checkpoint(self, checkpoint_path: str, model=None) -> None:
            load_adapter(self.model, checkpoint_path)

    return LoraTrainer


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters of ``model``."""
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)
