"""Models trained here (fine-tuned classifier, decoder LM, digits ViT): their cache entries, a
folder under nnlut's cache (:func:`nnlut._files.cache_dir`) holding the weights and a
``meta.json`` (training time, settings), loaded when present and trained once otherwise; and
the one optimizer step their training loops take."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._files import OutputFolder
from .._logging import logger


def save_entry(folder: Path, state: dict[str, Any], weights_name: str, meta: dict[str, Any]) -> None:
    """Write ``state`` (as ``weights_name``) and ``meta.json`` into ``folder`` as one result
    (:class:`nnlut._files.OutputFolder`): a cache entry is never half-written. An incomplete
    entry left there before is replaced."""
    if folder.exists() and not is_cached(folder, weights_name):
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    with OutputFolder(folder, kind="model cache") as out:
        out.write_bytes(weights_name, buf.getvalue())
        out.write_text("meta.json", json.dumps(meta, indent=1))


def is_cached(folder: Path, weights_name: str = "model.pt") -> bool:
    """Whether ``folder`` holds a complete cache entry."""
    return (folder / weights_name).exists() and (folder / "meta.json").exists()


def cached_model(folder: Path, model: torch.nn.Module, train: Callable[[], dict[str, Any]], *,
                 weights_name: str = "model.pt", what: str = "model") -> tuple[Any, dict[str, Any]]:
    """(``model`` in eval mode, meta): its weights loaded from the cache entry ``folder``, or
    trained in place by ``train()`` (which returns the meta) and cached first."""
    if is_cached(folder, weights_name):
        model.load_state_dict(torch.load(folder / weights_name, map_location="cpu", weights_only=True))
        logger.info("loaded %s from %s", what, folder)
        return model.eval(), json.loads((folder / "meta.json").read_text())
    logger.info("training the %s; cached afterwards in %s", what, folder)
    meta = train()
    save_entry(folder, model.state_dict(), weights_name, meta)
    return model.eval(), meta


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched: Any, clip: Any = None) -> float:
    """One training step on ``loss``: gradients, optional clipping of ``clip`` (the model's
    parameters) to norm 1, the optimizer and the schedule; returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip, 1.0)
    opt.step()
    sched.step()
    return loss.item()
