"""A small vision transformer trained here on scikit-learn's bundled digits (no download).

The 1,797 8x8 grey images (ten classes) are split in halves by a seeded stratified sample;
transformers' ``ViTForImageClassification`` (patches of 2x2 pixels, so 16 patches and a class
token; GELU, LayerNorm, softmax attention) is trained on one half with a fixed seed and cached
in nnlut's cache folder with its training time, then judged on the other half.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from .._files import cache_dir
from .._logging import progress
from ._cache import cached_model, optimizer_step
from ._data import stratified_sample
from ._logits import LogitsTask


@dataclass(frozen=True)
class ViTSettings:
    """Model size and training recipe (defaults: about 0.1 M parameters, well under a minute)."""

    seed: int = 0
    layers: int = 4
    hidden: int = 64
    heads: int = 4
    intermediate: int = 128
    patch: int = 2
    epochs: int = 40
    batch: int = 64
    lr: float = 2e-3

    def key(self) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"vit-digits-{h[:12]}"


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels); images float32
    ``(n, 1, 8, 8)`` scaled to [0, 1], labels int64 ``(n,)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NNLUTError("the digits model needs scikit-learn: pip install 'nnlut[models]'") from None
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    train = stratified_sample(y, len(y) // 2, seed)
    test = np.setdiff1d(np.arange(len(y)), train)
    return x[train], y[train], x[test], y[test]


def build_vit(s: ViTSettings) -> Any:
    try:
        from transformers import ViTConfig, ViTForImageClassification
    except ImportError:
        raise NNLUTError("the digits model needs transformers: pip install 'nnlut[models]'") from None
    cfg = ViTConfig(image_size=8, patch_size=s.patch, num_channels=1, hidden_size=s.hidden, num_hidden_layers=s.layers,
                    num_attention_heads=s.heads, intermediate_size=s.intermediate, hidden_act="gelu", num_labels=10,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(s.seed)
    return ViTForImageClassification(cfg)


def train_vit(model: Any, x: np.ndarray, y: np.ndarray, s: ViTSettings) -> dict[str, Any]:
    """Train on (x, y) with AdamW and a cosine schedule; returns meta with the wall time (s)."""
    gen = torch.Generator().manual_seed(s.seed)
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    steps = s.epochs * -(-len(x) // s.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, losses = time.perf_counter(), []
    for _ in progress(range(s.epochs), desc="train ViT", total=s.epochs):
        order = torch.randperm(len(x), generator=gen)
        for b in range(0, len(x), s.batch):
            idx = order[b:b + s.batch]
            losses.append(optimizer_step(model(pixel_values=xs[idx], labels=ys[idx]).loss, opt, sched))
    model.eval()
    return {"settings": asdict(s), "train_seconds": time.perf_counter() - t0, "train_images": len(x),
            "final_loss": float(np.mean(losses[-10:])), "parameters": sum(p.numel() for p in model.parameters())}


def load_vit(s: ViTSettings, x: np.ndarray, y: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, meta): from the cache, or trained on (x, y) and cached first."""
    model = build_vit(s)
    return cached_model(cache_dir() / "vit" / s.key(), model, lambda: train_vit(model, x, y, s), what="ViT")


def _logits(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=pixels).logits


def build_vit_task(seed: int = 0, limit: int | None = None, batch_size: int = 128,
                   settings: ViTSettings | None = None) -> LogitsTask:
    """The trained digits ViT on the test half (``limit``: a stratified sample of it);
    calibration batches are training images (unlabeled)."""
    s = settings or ViTSettings(seed=seed)
    xtr, ytr, xte, yte = digits(seed)
    if limit is not None:
        if limit < 1:
            raise NNLUTError(f"limit must be a positive number of images, got {limit}")
        if limit < len(yte):
            keep = stratified_sample(yte, limit, seed)
            xte, yte = xte[keep], yte[keep]
    model, meta = load_vit(s, xtr, ytr)
    xt = torch.as_tensor(xte)
    batches = [(np.arange(b, min(b + batch_size, len(yte))), xt[b:b + batch_size]) for b in range(0, len(yte), batch_size)]
    calib = [torch.as_tensor(xtr[b:b + batch_size]) for b in range(0, len(xtr), batch_size)]
    info = {"model": "vit-digits", "test_images": len(yte), "classes": 10, "seed": seed,
            "train_images": meta["train_images"], "train_seconds": meta["train_seconds"], "parameters": meta["parameters"]}
    return LogitsTask(model, _logits, batches, yte, info, calib)
