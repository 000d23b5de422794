"""A tiny, randomly initialised BERT with the packaged model's tokenizer, saved as a plain
transformers folder: every loss, pooling and guard can take real training steps on it in well
under a second on a CPU, where all-MiniLM-L6-v2 would take minutes per test."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model_folder(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sttune_helpers.modeling import packaged_model_path

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
