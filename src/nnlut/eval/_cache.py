"""Cache entries of models trained here (fine-tuned classifier, decoder LM, digits ViT)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_entry(folder: Path, state: dict[str, Any], weights_name: str, meta: dict[str, Any]) -> None:
    """Write ``state`` (as ``weights_name``) and ``meta.json`` into ``folder`` under a temporary
    name, then rename: a cache entry is never half-written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        torch.save(state, tmp / weights_name)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
