"""A sentence classifier on a pretrained encoder: fine-tuning (cached) and batched inference.

The classifier mean-pools the encoder's final hidden states over real tokens and applies a
linear head. Fine-tuning trains everything on the training half with a fixed seed and caches
the weights (outside the repository, in nnlut's cache) together with the wall time it took,
which calibration is measured against.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._files import cache_dir
from .._logging import progress
from ._cache import cached_model, optimizer_step
from ._cache import is_cached as cached
from ._data import SentimentSet
from ._dist import all_gather, my_share, world
from ._models import load_encoder


class SentenceClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(input_ids, attention_mask, **kw)))


@dataclass(frozen=True)
class FinetuneSettings:
    model: str = "minilm"
    seed: int = 0
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01

    def key(self, train_ids: np.ndarray) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode() + train_ids.tobytes()).hexdigest()
        return f"{Path(self.model).name}-{h[:12]}"


def encode_batches(tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int, *,
                   shuffle_seed: int | None = None) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield (indices, tokenizer batch). Without a seed, batches group similar lengths
    (less padding); with one, they are a seeded shuffle (training)."""
    n = len(texts)
    if shuffle_seed is None:
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.random.default_rng(shuffle_seed).permutation(n)
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        yield idx, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def is_cached(settings: FinetuneSettings, train: SentimentSet) -> bool:
    """Whether a fine-tuned classifier for these settings is already in the cache."""
    return cached(cache_dir() / "finetuned" / settings.key(train.ids), "classifier.pt")


def load_classifier(settings: FinetuneSettings, train: SentimentSet) -> tuple[Any, SentenceClassifier, dict[str, Any]]:
    """(tokenizer, fine-tuned classifier, meta), fine-tuning and caching on first use."""
    tok, encoder = load_encoder(settings.model)
    clf = SentenceClassifier(encoder)
    clf, meta = cached_model(cache_dir() / "finetuned" / settings.key(train.ids), clf,
                             lambda: finetune(clf, tok, train, settings), weights_name="classifier.pt",
                             what="fine-tuned classifier")
    return tok, clf, meta


def finetune(clf: SentenceClassifier, tok: Any, train: SentimentSet, s: FinetuneSettings) -> dict[str, Any]:
    """Fine-tune every weight of ``clf`` on ``train``; returns meta with the wall time."""
    torch.manual_seed(s.seed)
    clf.train()
    steps_per_epoch = math.ceil(len(train) / s.batch_size)
    total = steps_per_epoch * s.epochs
    decay = [p for n, p in clf.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in clf.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr)
    warm = max(1, int(s.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / warm, max(0.0, (total - k) / (total - warm))))
    labels = torch.as_tensor(train.labels)
    t0 = time.perf_counter()
    losses = []
    for epoch in range(s.epochs):
        it = encode_batches(tok, train.texts, s.batch_size, s.max_length, shuffle_seed=s.seed * 1000 + epoch)
        for idx, batch in progress(it, desc=f"fine-tune epoch {epoch + 1}/{s.epochs}", total=steps_per_epoch):
            loss = nn.functional.cross_entropy(clf(**batch), labels[idx])
            losses.append(optimizer_step(loss, opt, sched, clip=clf.parameters()))
    seconds = time.perf_counter() - t0
    clf.eval()
    return {"settings": asdict(s), "train_sentences": len(train), "finetune_seconds": seconds,
            "final_loss": float(np.mean(losses[-20:])), "torch_threads": torch.get_num_threads()}


@torch.no_grad()
def run_model(clf: SentenceClassifier, tok: Any, data: SentimentSet, *, batch_size: int = 64, max_length: int = 128,
              desc: str = "inference", max_batches: int | None = None) -> dict[str, np.ndarray]:
    """Logits and pooled final hidden states for every sentence (in data order). Under
    ``torchrun`` each rank runs its share of the batches and every rank gets all rows."""
    n = len(data)
    logits = np.zeros((n, clf.head.out_features), dtype=np.float32)
    pooled = np.zeros((n, clf.head.in_features), dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    batches = encode_batches(tok, data.texts, batch_size, max_length)
    if max_batches is not None:
        batches = itertools.islice(batches, max_batches)
    rank, size = world()
    total = math.ceil(min(n / batch_size, max_batches or n) / size)
    local = []
    for idx, batch in progress(my_share(batches), desc=desc, total=total):
        p = clf.pooled(**batch)
        local.append((idx, clf.head(p).float().numpy(), p.float().numpy()))
    for part in all_gather(local):
        for idx, lg, pl in part:
            logits[idx], pooled[idx], done[idx] = lg, pl, True
    return {"logits": logits[done], "pooled": pooled[done], "index": np.flatnonzero(done)}
