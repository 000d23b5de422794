"""A model's vocabulary and input token-embedding matrix, for the embedding synonym source: read
straight from a folder's safetensors and tokenizer.json (no torch, no transformers) where it can,
else through transformers; or taken from a loaded model object."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...modeling import resolve_model_source


def vocab_style(token_ids: Mapping[str, int]) -> str:
    """How the tokenizer marks whole words: WordPiece ("##" marks a continuation), SentencePiece
    ("▁" marks a word start) or byte-level BPE ("Ġ" marks a word start)."""
    counts = Counter()
    for token in token_ids:
        if token.startswith("##"):
            counts["wordpiece"] += 1
        elif token.startswith("▁"):
            counts["sentencepiece"] += 1
        elif token.startswith("Ġ"):
            counts["bytelevel"] += 1
    style, n = counts.most_common(1)[0] if counts else ("plain", 0)
    return style if n >= 0.01 * max(1, len(token_ids)) else "plain"


def token_word(token: str, style: str) -> str | None:
    if style == "wordpiece" or style == "plain":
        return None if token.startswith("##") else token
    marker = "▁" if style == "sentencepiece" else "Ġ"
    return token[1:] if token.startswith(marker) else None


def model_folder(model: str) -> Path:
    if model == "default" or not Path(model).expanduser().exists():
        source = resolve_model_source(model)
        if source.kind == "hub":
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(source.location, local_files_only=True))
        return Path(source.location)
    return Path(model).expanduser()


def _transformer_folder(folder: Path) -> Path:
    """Where the transformer weights live: the folder itself, or a SentenceTransformer's
    Transformer module folder named in modules.json."""
    if list(folder.glob("*.safetensors")) or (folder / "config.json").is_file() and \
            not (folder / "modules.json").is_file():
        return folder
    modules = folder / "modules.json"
    if modules.is_file():
        import json

        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Transformer"):
                return folder / module.get("path", "")
    return folder


_EMBEDDING_TENSOR_SUFFIXES = ("word_embeddings.weight", "embed_tokens.weight", "shared.weight", "wte.weight",
                              "tok_embeddings.weight", "embeddings.weight")


def read_embeddings_from_folder(folder: Path) -> tuple[dict[str, int], np.ndarray, list[str]]:
    """Vocabulary and input-embedding matrix straight from the files: safetensors + tokenizer.json
    need neither torch nor transformers (which take minutes to import on a slow machine)."""
    weights_folder = _transformer_folder(folder)
    tokenizer_file = next((p for p in (weights_folder / "tokenizer.json", folder / "tokenizer.json") if p.is_file()),
                          None)
    weight_files = sorted(weights_folder.glob("*.safetensors"))
    if tokenizer_file is not None and weight_files:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        special = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        for weight_file in weight_files:
            with safe_open(str(weight_file), "np") as tensors:
                for suffix in _EMBEDDING_TENSOR_SUFFIXES:
                    for key in tensors.keys():
                        if key.endswith(suffix):
                            matrix = tensors.get_tensor(key)
                            if matrix.ndim == 2 and abs(matrix.shape[0] - len(vocab)) <= 0.1 * len(vocab) + 1024:
                                return vocab, matrix.astype(np.float32), special
    # Anything else (a .bin checkpoint, a slow tokenizer): let transformers load it.
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights_folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(weights_folder), local_files_only=True)
    matrix = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    return tokenizer.get_vocab(), matrix, list(tokenizer.all_special_tokens)


def read_embeddings_from_object(model: Any, tokenizer: Any) -> tuple[dict[str, int], np.ndarray, list[str]]:
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        raise ValueError("pass tokenizer=... : the model has no .tokenizer to read the vocabulary from")
    modules = model.modules() if hasattr(model, "modules") else [model]
    for module in modules:
        get_embeddings = getattr(module, "get_input_embeddings", None)
        if callable(get_embeddings):
            embeddings = get_embeddings()
            if embeddings is not None and hasattr(embeddings, "weight"):
                matrix = embeddings.weight.detach().float().cpu().numpy()
                return tokenizer.get_vocab(), matrix, list(getattr(tokenizer, "all_special_tokens", []))
    raise ValueError(f"found no input-embedding matrix in {type(model).__name__}: expected a transformers model "
                     "(get_input_embeddings) inside it")
