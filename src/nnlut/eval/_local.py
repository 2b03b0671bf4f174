"""The user's own models and data: a local HuggingFace sequence classifier with a TSV file of
texts and labels, or a local causal LM with a text file (perplexity).

A TSV line is ``text <TAB> label`` (label an integer class index; empty lines skipped). Bad
files raise :class:`nnlut.NNLUTError` with one line naming the file, the line and the problem.
Calibrated configurations calibrate on the file's own texts, unlabeled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from ._lm import chunks
from ._lm_eval import LMTask
from ._logits import LogitsTask

KINDS = {"ForSequenceClassification": "classifier", "ForCausalLM": "causal-lm"}


def model_kind(folder: str | os.PathLike[str]) -> str:
    """``classifier`` or ``causal-lm`` from the folder's ``config.json`` architectures."""
    cfg_path = Path(folder) / "config.json"
    if not cfg_path.exists():
        raise NNLUTError(f"{folder}: not a HuggingFace model folder (no config.json)")
    try:
        archs = json.loads(cfg_path.read_text()).get("architectures") or []
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NNLUTError(f"{cfg_path}: not valid JSON ({e})") from None
    for a in archs:
        for suffix, kind in KINDS.items():
            if a.endswith(suffix):
                return kind
    raise NNLUTError(f"{cfg_path}: architectures {archs} include no *ForSequenceClassification or *ForCausalLM model")


def _read(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    if not p.is_file():
        raise NNLUTError(f"{path}: no such file")
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise NNLUTError(f"{path} line {line}: not UTF-8 text (byte {e.start})") from None


def read_tsv(path: str | os.PathLike[str], num_labels: int) -> tuple[list[str], np.ndarray]:
    """(texts, labels int64 ``(n,)``) from ``text<TAB>label`` lines; labels in 0..num_labels-1."""
    texts, labels = [], []
    for k, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise NNLUTError(f"{path} line {k}: expected 'text<TAB>label', found no tab")
        if not text.strip():
            raise NNLUTError(f"{path} line {k}: the text is empty")
        try:
            y = int(label.strip())
        except ValueError:
            raise NNLUTError(f"{path} line {k}: label {label.strip()!r} is not an integer class index") from None
        if not 0 <= y < num_labels:
            raise NNLUTError(f"{path} line {k}: label {y} is outside 0..{num_labels - 1} (the model has {num_labels} classes)")
        texts.append(text.strip())
        labels.append(y)
    if not texts:
        raise NNLUTError(f"{path}: no 'text<TAB>label' lines")
    return texts, np.array(labels, dtype=np.int64)


def load_folder(folder: str, auto: str) -> tuple[Any, Any]:
    """(tokenizer, ``transformers.<auto>`` model in eval mode) from a local model folder (local files only)."""
    try:
        import transformers
    except ImportError:
        raise NNLUTError("evaluating models needs transformers: pip install 'nnlut[models]'") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)  # nothing is downloaded
    model = getattr(transformers, auto).from_pretrained(folder, local_files_only=True).eval()
    return tok, model


def _classify(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs).logits


def build_classifier_task(folder: str, data: str, *, batch_size: int = 32, max_length: int = 128,
                          calibrate_batches: int = 8) -> LogitsTask:
    """A local sequence classifier judged on a TSV file."""
    tok, model = load_folder(folder, "AutoModelForSequenceClassification")
    texts, labels = read_tsv(data, int(model.config.num_labels))
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths together: less padding
    batches = []
    for b in range(0, len(texts), batch_size):
        idx = order[b:b + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batches.append((idx, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}))
    if isinstance(calibrate_batches, bool) or not isinstance(calibrate_batches, int) or calibrate_batches < 0:
        raise NNLUTError(f"calibrate_batches must be a whole number of batches (0 or more), got {calibrate_batches!r}")
    stride = max(1, len(batches) // max(calibrate_batches, 1))
    calib = [inputs for _, inputs in batches[::stride]][:calibrate_batches]
    meta = {"model": str(folder), "kind": "classifier", "data": str(data), "test_sentences": len(texts),
            "classes": int(model.config.num_labels),
            "label_shares": (np.bincount(labels, minlength=model.config.num_labels) / len(labels)).tolist()}
    return LogitsTask(model, _classify, batches, labels, meta, calib)


def build_causal_task(folder: str, data: str, *, context: int | None = None, limit: int | None = None,
                      calibrate: int = 8) -> LMTask:
    """A local causal LM judged by perplexity on a text file cut into sequences of
    ``context`` tokens (default: 512 or the model's maximum, whichever is smaller)."""
    tok, model = load_folder(folder, "AutoModelForCausalLM")
    text = _read(data)
    if not text.strip():
        raise NNLUTError(f"{data}: the file is empty")
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    max_pos = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    ctx = min(512, max_pos) if context is None else context
    if ctx < 2 or ctx > max_pos:
        raise NNLUTError(f"context must be in 2..{max_pos} tokens for this model, got {ctx}")
    if len(ids) < ctx:
        raise NNLUTError(f"{data}: {len(ids)} tokens, fewer than one sequence of {ctx}")
    seqs = chunks(ids, ctx, limit)
    meta = {"model": str(folder), "kind": "causal-lm", "data": str(data), "vocab_size": int(model.config.vocab_size),
            "context": ctx, "test_sequences": int(seqs.shape[0]), "test_tokens": int(seqs.numel())}
    return LMTask(model, seqs, seqs[:calibrate], meta)
