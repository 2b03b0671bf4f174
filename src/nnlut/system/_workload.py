"""Transformer encoder workloads: the GEMMs and non-linear ops of one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import NNLUTError


@dataclass(frozen=True)
class EncoderShape:
    name: str
    layers: int
    hidden: int
    heads: int
    intermediate: int

    def __post_init__(self) -> None:
        for f in ("layers", "hidden", "heads", "intermediate"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise NNLUTError(f"model shape {f} must be a positive integer, got {v!r}")
        if self.hidden % self.heads:
            raise NNLUTError(f"hidden size {self.hidden} is not a multiple of {self.heads} heads")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


BERT_BASE = EncoderShape("bert-base", 12, 768, 12, 3072)


def shape_of(model: str) -> EncoderShape:
    """``bert-base``, a shipped model (``minilm``, ``mpnet``: read from its HuggingFace config)
    or a path to a model folder / config.json."""
    if model in ("bert-base", "bert"):
        return BERT_BASE
    from pathlib import Path

    p = Path(model)
    if not p.exists():
        from ..eval._models import MODELS, model_path

        if model not in MODELS:
            raise NNLUTError(f"unknown model {model!r}; use bert-base, {', '.join(MODELS)} or a config.json path")
        p = model_path(model)
    cfg_path = p / "config.json" if p.is_dir() else p
    from .._files import read_json

    cfg = read_json(cfg_path, "model config")
    if not isinstance(cfg, dict):
        raise NNLUTError(f"model config {cfg_path} must be a JSON object, got {type(cfg).__name__}")
    try:
        return EncoderShape(Path(model).name, int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]),
                            int(cfg["num_attention_heads"]), int(cfg["intermediate_size"]))
    except KeyError as e:
        raise NNLUTError(f"model config {cfg_path} lacks {e}") from None
    except (OverflowError, TypeError, ValueError) as e:
        raise NNLUTError(f"model config {cfg_path}: a size is not an integer ({e})") from None


@dataclass(frozen=True)
class Gemm:
    """``M`` streamed rows times a ``K x N`` weight (stationary) matrix, ``count`` times."""

    name: str
    M: int
    K: int
    N: int
    count: int = 1


@dataclass(frozen=True)
class Elementwise:
    """A non-linear (or other vector) op over ``elements`` values in ``rows`` rows."""

    op: str
    elements: int
    rows: int


def encoder_ops(shape: EncoderShape, seq_len: int, batch: int = 1) -> tuple[list[Gemm], list[Elementwise]]:
    """The GEMMs and vector ops of one encoder forward pass (embedding LayerNorm included)."""
    if seq_len < 1 or batch < 1:
        raise NNLUTError(f"seq_len and batch must be positive, got {seq_len} and {batch}")
    L, B, H, F, A, d = seq_len, batch, shape.hidden, shape.intermediate, shape.heads, shape.head_dim
    tokens = B * L
    g = [
        Gemm("qkv", tokens, H, H, 3),
        Gemm("scores", L, d, L, B * A),  # Q K^T per head: K^T is the stationary operand
        Gemm("context", L, L, d, B * A),  # P V per head
        Gemm("attn_out", tokens, H, H, 1),
        Gemm("ffn_up", tokens, H, F, 1),
        Gemm("ffn_down", tokens, F, H, 1),
    ]
    gemms = [Gemm(x.name, x.M, x.K, x.N, x.count * shape.layers) for x in g]
    ew = [
        Elementwise("gelu", tokens * F * shape.layers, tokens * shape.layers),
        Elementwise("softmax", B * A * L * L * shape.layers, B * A * L * shape.layers),
        Elementwise("layernorm", tokens * H * (2 * shape.layers + 1), tokens * (2 * shape.layers + 1)),
        # residual additions and bias additions of the 6 GEMM outputs
        Elementwise("other", tokens * H * 2 * shape.layers + tokens * (4 * H + F + H) * shape.layers,
                    tokens * shape.layers),
    ]
    return gemms, ew
