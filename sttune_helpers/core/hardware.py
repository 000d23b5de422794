"""The machine: which device and mixed precision to train and encode with, from what the CPU or
GPU can do fast. Imports nothing from the package."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from .errors import SettingError


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference != "auto":
        if preference == "cuda" and not torch.cuda.is_available():
            raise SettingError("model.device is 'cuda' but torch sees no CUDA device "
                               "(is a CUDA build of torch installed?)")
        return preference
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """(vendor_id, flags) of the first CPU in ``cpuinfo``; ("", set()) where it cannot be read."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return "", set()
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    vendor = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "")
    return vendor, flags


def cpu_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The bf16 units that make bf16 training faster than fp32 on this CPU, or None where it is not.
    Measured on 2-core machines (bench/RESULTS.md): AMX (amx_bf16) about 2x fp32; AVX512-BF16 on an AMD
    EPYC (Zen 4) 1.47x; AVX512-BF16 on a Xeon without AMX 1.4x *slower*, so that one is not counted."""
    vendor, flags = cpu_features(cpuinfo)
    if "amx_bf16" in flags:
        return "AMX bf16 units (amx_bf16)"
    if vendor == "AuthenticAMD" and "avx512_bf16" in flags:
        return "AMD's AVX512-BF16 units (avx512_bf16)"
    return None


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
        units = cpu_fast_bf16()
        if units:
            return "bf16", f"the CPU has {units}, where bf16 trains 1.4-2x as fast as fp32"
        return "fp32", ("the CPU has neither AMX bf16 units nor AMD's AVX512-BF16, where bf16 is slower than fp32 "
                        "(set train.precision=bf16 to use it anyway)")
    return "fp32", f"no mixed precision on {device}"


def resolve_encoding_precision(model, preference: str = "auto") -> str:
    """What :func:`encoding_precision` uses for ``model``, bf16 or fp32 ("auto": bf16 where training
    would pick it: see :func:`cpu_fast_bf16`, or a GPU with bf16)."""
    import torch

    device = torch.device(model.device).type
    precision = preference
    if preference == "auto":
        precision = "bf16" if pick_precision("auto", device)[0] == "bf16" else "fp32"
    return "bf16" if precision == "bf16" and device in ("cpu", "cuda") else "fp32"


@contextlib.contextmanager
def encoding_precision(model, preference: str = "auto") -> Iterator[str]:
    """Run the model's encode() calls inside in bf16 autocast where :func:`resolve_encoding_precision`
    says so; yields the precision used. Embeddings stay float32."""
    import torch

    precision = resolve_encoding_precision(model, preference)
    if precision == "bf16":
        with torch.autocast(torch.device(model.device).type, dtype=torch.bfloat16):
            yield precision
    else:
        yield precision
