"""Tiny local HuggingFace models (random weights) and data files for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ["good", "bad", "great", "awful", "film", "plot", "the", "a", "was", "is", "not", "very", "fun", "dull"]


def _tokenizer(folder: Path):
    from transformers import BertTokenizer

    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizer(str(vocab))


@pytest.fixture(scope="session")
def local_models(tmp_path_factory):
    """(classifier folder, causal LM folder, TSV file, text file)."""
    pytest.importorskip("transformers", reason="local models need transformers")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("local")
    clf_dir, lm_dir = root / "clf", root / "lm"
    for d in (clf_dir, lm_dir):
        d.mkdir()
    torch.manual_seed(0)
    tok = _tokenizer(root)
    clf = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64, num_labels=2,
                                                   max_position_embeddings=64))
    clf.save_pretrained(clf_dir)
    tok.save_pretrained(clf_dir)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=128))
    lm.save_pretrained(lm_dir)
    tok.save_pretrained(lm_dir)
    import random

    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(40)]
    tsv = root / "data.tsv"
    tsv.write_text("".join(f"{t}\t{i % 2}\n" for i, t in enumerate(lines)))
    txt = root / "text.txt"
    txt.write_text(" ".join(lines * 3) + "\n")
    return clf_dir, lm_dir, tsv, txt


@pytest.fixture(autouse=True)
def _one_thread():
    """The models here are tiny: one thread is as fast, and far faster on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
