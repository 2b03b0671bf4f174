"""Tiny models for swap tests: hand-written modules and randomly initialised HF configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class ToyBlock(nn.Module):
    """An MLP with GELU and LayerNorm and a toy attention with an explicit nn.Softmax."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.softmax = nn.Softmax(dim=-1)
        self.up = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.down = nn.Linear(4 * d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.softmax(self.q(x) @ self.k(x).transpose(-1, -2) / 4.0)
        h = x + att @ x
        return self.norm(h + self.down(self.act(self.up(h))))


@pytest.fixture
def toy():
    torch.manual_seed(0)
    return ToyBlock().eval()


def tiny_hf(kind: str, attn: str = "eager", dtype=torch.float32):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=120)
    if kind == "bert":
        cfg = transformers.BertConfig(**common, attn_implementation=attn)
        model = transformers.BertModel(cfg)
    elif kind == "roberta":
        cfg = transformers.RobertaConfig(**common, attn_implementation=attn)
        model = transformers.RobertaModel(cfg)
    elif kind == "distilbert":
        cfg = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=120,
                                            attn_implementation=attn)
        model = transformers.DistilBertModel(cfg)
    elif kind == "mpnet":
        cfg = transformers.MPNetConfig(**common)
        model = transformers.MPNetModel(cfg)
    elif kind == "llama":
        cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       intermediate_size=64, vocab_size=120, attn_implementation=attn)
        model = transformers.LlamaModel(cfg)
    else:
        raise ValueError(kind)
    return model.to(dtype).eval()


def batch(pad: bool = True):
    ids = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if pad:
        mask[1, 6:] = 0
        mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}
