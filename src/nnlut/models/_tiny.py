"""Tiny random-init transformers models for inspection: a family's default config shrunk (hidden
64, 2 layers, 4 heads, small experts), or a local model folder, plus a probe batch of token ids.

The shrinking sets only the size attributes the default config has; per-layer pattern lists
(``layer_types``) keep one layer of each kind. transformers is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._errors import NNLUTError

SIZES = {
    "hidden_size": 64, "n_embd": 64, "d_model": 64, "dim": 64, "embed_dim": 64, "emb_dim": 64,
    "num_hidden_layers": 2, "n_layer": 2, "n_layers": 2, "num_layers": 2, "encoder_layers": 2,
    "decoder_layers": 2, "num_decoder_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "num_heads": 4, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "kv_channels": 16,
    "intermediate_size": 128, "n_inner": 128, "ffn_dim": 128, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
    "d_ff": 128, "hidden_dim": 128,
    "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32, "expert_intermediate_size": 32,
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
    "max_position_embeddings": 512, "sliding_window": 4, "rotary_dim": 8,
}
MAX_PARAMS = 40_000_000
_LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HEADS = ("AutoModelForCausalLM", "AutoModelForMaskedLM")


def _kind(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else repr(value)


def tiny_config(model_type: str) -> Any:
    """The default config of ``model_type`` with every size attribute it has made tiny."""
    from transformers import AutoConfig

    try:
        default = AutoConfig.for_model(model_type)
    except ValueError:
        raise NNLUTError(f"{model_type!r} is neither a model folder nor a transformers model type") from None
    if hasattr(default, "get_text_config") and default.get_text_config() is not default:
        raise NNLUTError(f"{model_type!r} has a composite config (a text config inside); give a model folder")
    have = default.to_dict()
    kw = {k: v for k, v in SIZES.items() if k in have and have[k] is not None}
    layers = next((have[k] for k in _LAYERS if k in have), None)
    for key, value in have.items():  # per-layer patterns: one layer of each of the first two kinds
        if isinstance(value, list) and layers and len(value) == layers and layers > 2:
            kinds = list(dict.fromkeys(_kind(v) for v in value))
            picked = [value[[_kind(v) for v in value].index(k)] for k in kinds[:2]]
            kw[key] = picked if len(kinds) >= 2 else value[:2]
    if "qk_rope_head_dim" in have or "kv_lora_rank" in have:  # latent attention keeps its head sizes
        kw.pop("head_dim", None)
        if "num_key_value_heads" in kw:
            kw["num_key_value_heads"] = kw.get("num_attention_heads", 4)
    return AutoConfig.for_model(model_type, **kw)


def head_of(model_type: str) -> str:
    """The auto class with a language-model head for ``model_type`` (causal first)."""
    from transformers.models.auto import modeling_auto as ma

    if model_type in ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "AutoModelForCausalLM"
    if model_type in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "AutoModelForMaskedLM"
    return "AutoModel"


def load_model(spec: str, attn: str = "eager", seed: int = 0) -> torch.nn.Module:
    """A local model folder (``from_pretrained``), or a tiny random-init model of the
    transformers model type ``spec``, in eval mode with attention ``attn``."""
    import transformers

    if Path(spec).is_dir():
        cfg = transformers.AutoConfig.from_pretrained(spec)
        auto = head_of(cfg.model_type)
        return getattr(transformers, auto).from_pretrained(spec, attn_implementation=attn).eval()
    cfg = tiny_config(spec)
    auto = getattr(transformers, head_of(spec))
    try:
        with torch.device("meta"):
            n = sum(p.numel() for p in auto.from_config(cfg).parameters())
        if n > MAX_PARAMS:
            raise NNLUTError(f"a {spec} model is still {n / 1e6:.0f} M parameters after shrinking (some size has "
                             f"another name); give a model folder")
        torch.manual_seed(seed)
        model = auto.from_config(cfg, attn_implementation=attn)
    except NNLUTError:
        raise
    except Exception as e:  # noqa: BLE001  (a family that needs more than its shrunk defaults)
        raise NNLUTError(f"cannot build a tiny {spec} model: {type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    return model.eval()


def probe_inputs(model: torch.nn.Module, tokens: int = 12) -> dict[str, torch.Tensor]:
    """Two rows of ``tokens`` random token ids, the second padded after two thirds."""
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    if vocab < 16:
        raise NNLUTError(f"nnlut inspects text models (token ids); this one has vocabulary size {vocab}")
    ids = torch.randint(3, min(vocab, 1000) - 1, (2, tokens), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, (2 * tokens) // 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}
