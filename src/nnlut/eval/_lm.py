"""nnlut's own decoder LM: a small LLaMA-style byte-level model trained here, cached.

Architecture (transformers' ``LlamaForCausalLM``): SiLU-gated MLP, RMSNorm, rotary position
embeddings, causal softmax attention; 256 byte tokens, so any text is in-vocabulary. It is
trained with a fixed seed on the sentiment sentences that install from PyPI (the movie-review
training half plus the Amazon, NYT and tweet sets; the movie-review test half is held out),
cached in nnlut's cache folder with its training time, and judged by held-out perplexity.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .._errors import NNLUTError
from .._files import cache_dir
from .._logging import progress
from ._cache import cached_model, optimizer_step
from ._data import load_set, split
from ._dist import all_gather, my_share

VOCAB = 256  # bytes
EXTRA_TEXTS = ("amazon", "nyt", "tweets")  # trained on whole; the movie-review test half is held out


@dataclass(frozen=True)
class LMSettings:
    """Model size and training recipe (defaults: 0.21 M parameters, 400 steps of 4 x 512
    tokens: about 8 minutes on one busy core).

    ``context`` is the training sequence length in tokens (bytes); ``steps`` optimizer steps
    of ``batch`` sequences; ``lr`` peak AdamW learning rate (linear warm-up, cosine decay).
    """

    seed: int = 0
    layers: int = 4
    hidden: int = 64
    heads: int = 4
    intermediate: int = 172
    context: int = 512
    batch: int = 4
    steps: int = 400
    lr: float = 3e-3

    def __post_init__(self) -> None:
        for f in ("layers", "hidden", "heads", "intermediate", "context", "batch", "steps"):
            if int(getattr(self, f)) < 1:
                raise NNLUTError(f"LM setting {f} must be a positive integer, got {getattr(self, f)}")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise NNLUTError(f"LM hidden size {self.hidden} must split into {self.heads} heads of even size")

    def key(self) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"lm-bytes-{h[:12]}"


def encode(text: str) -> np.ndarray:
    """UTF-8 bytes of ``text`` as token ids (int64, shape ``(len,)``)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def corpora(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training tokens, held-out tokens): sentences joined by newlines. Held out: the
    movie-review test half of the seeded split the classifiers use."""
    train, test = split(load_set("movie"), seed)
    texts = list(train.texts)
    for name in EXTRA_TEXTS:
        texts += list(load_set(name).texts)
    order = np.random.default_rng(seed).permutation(len(texts))
    return encode("\n".join(texts[i] for i in order) + "\n"), encode("\n".join(test.texts) + "\n")


def chunks(tokens: np.ndarray, length: int, count: int | None = None) -> torch.Tensor:
    """Non-overlapping sequences of ``length`` tokens, shape ``(count, length)``, int64."""
    n = len(tokens) // length
    if n == 0:
        raise NNLUTError(f"text of {len(tokens)} tokens is shorter than one sequence of {length}")
    n = n if count is None else min(n, count)
    return torch.as_tensor(tokens[:n * length].reshape(n, length))


def build_model(s: LMSettings) -> Any:
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        raise NNLUTError("the decoder LM needs transformers: pip install 'nnlut[models]'") from None
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=s.hidden, intermediate_size=s.intermediate,
                      num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
                      max_position_embeddings=4 * s.context, hidden_act="silu", rms_norm_eps=1e-5,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(s.seed)
    return LlamaForCausalLM(cfg)


def train_lm(model: Any, tokens: np.ndarray, s: LMSettings) -> dict[str, Any]:
    """Train ``model`` on random windows of ``tokens``; returns meta with the wall time (s)."""
    gen = torch.Generator().manual_seed(s.seed)
    data = torch.as_tensor(tokens)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, s.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min((k + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(1.0, k / s.steps)))))
    model.train()
    t0, losses = time.perf_counter(), []
    for _ in progress(range(s.steps), desc="train LM", total=s.steps):
        start = torch.randint(0, len(data) - s.context - 1, (s.batch,), generator=gen)
        batch = torch.stack([data[i:i + s.context] for i in start.tolist()])
        losses.append(optimizer_step(model(input_ids=batch, labels=batch).loss, opt, sched, clip=model.parameters()))
    model.eval()
    return {"settings": asdict(s), "train_seconds": time.perf_counter() - t0, "train_tokens": int(len(tokens)),
            "tokens_seen": s.steps * s.batch * s.context, "final_loss": float(np.mean(losses[-20:])),
            "parameters": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads()}


def load_lm(s: LMSettings, tokens: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, meta): from the cache, or trained on ``tokens`` (default: the
    training corpus) and cached first."""
    model = build_model(s)

    def train() -> dict[str, Any]:
        return train_lm(model, corpora(s.seed)[0] if tokens is None else tokens, s)

    return cached_model(cache_dir() / "lm" / s.key(), model, train, what=f"LM ({s.steps} steps)")


@torch.no_grad()
def sequence_nll(model: Any, seqs: torch.Tensor, batch_size: int = 8, desc: str = "perplexity") -> np.ndarray:
    """Per-position negative log-likelihood (nats) of each next token, float64 array of
    shape ``(n, length - 1)``; position j predicts token j + 1 from tokens 0..j. Under
    ``torchrun`` each rank runs its share of the batches and all ranks get every row."""
    out = np.zeros((seqs.shape[0], seqs.shape[1] - 1))
    mine = list(my_share(range(0, seqs.shape[0], batch_size)))
    local = {}
    for b in progress(mine, desc=desc, total=len(mine)):
        x = seqs[b:b + batch_size]
        logits = model(input_ids=x).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                reduction="none")
        local[b] = nll.reshape(x.shape[0], -1).double().numpy()
    for part in all_gather(local):
        for b, v in part.items():
            out[b:b + len(v)] = v
    return out
