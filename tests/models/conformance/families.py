"""Tiny randomly initialised configs of every transformers family nnlut is checked on.

Each family is one :class:`Family`: how to build the model (hidden 32, 2 layers) and a batch
for it. ``kind`` says what the model is: ``encoder`` (token ids, hidden states out),
``causal`` (generates), ``seq2seq`` (generates from encoder input), ``vision`` or ``audio``.
Used by the conformance tests and by ``benchmarks/conformance_matrix.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

VOCAB = 120


@dataclass(frozen=True)
class Family:
    name: str
    config_class: str
    model_class: str
    config: dict[str, Any]
    kind: str = "encoder"
    batch: Callable[[], dict[str, torch.Tensor]] | None = None
    attn: tuple[str, ...] = ("eager", "sdpa")
    extra: dict[str, Any] = field(default_factory=dict)

    def available(self, attn: str = "eager") -> str | None:
        """None when this transformers has the family (with attention ``attn``), else why not."""
        import transformers

        for cls in (self.config_class, self.model_class):
            if not hasattr(transformers, cls):
                return f"transformers {transformers.__version__} has no {cls}"
        if attn == "sdpa" and not getattr(getattr(transformers, self.model_class), "_supports_sdpa", False):
            return f"{self.model_class} has no SDPA attention in transformers {transformers.__version__}"
        return None

    def build(self, attn: str = "eager", dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        import transformers

        torch.manual_seed(0)
        cfg = getattr(transformers, self.config_class)(**self.config)
        model = getattr(transformers, self.model_class)._from_config(cfg, attn_implementation=attn)
        return model.to(dtype).eval()

    def inputs(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        b = (self.batch or text_batch)()
        return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in b.items()}


def text_batch() -> dict[str, torch.Tensor]:
    """Three sequences of 9 tokens, two of them padded at the end."""
    ids = torch.randint(5, VOCAB - 5, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def causal_batch() -> dict[str, torch.Tensor]:
    """Two unpadded sequences of 9 tokens (greedy generation compares them token by token)."""
    ids = torch.randint(5, VOCAB - 5, (2, 9), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def seq2seq_batch() -> dict[str, torch.Tensor]:
    b = text_batch()
    dec = torch.randint(5, VOCAB - 5, (3, 5), generator=torch.Generator().manual_seed(2))
    return {**b, "decoder_input_ids": dec}


def image_batch() -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))}


def audio_batch() -> dict[str, torch.Tensor]:
    feats = torch.randn(2, 16, 60, generator=torch.Generator().manual_seed(1))
    dec = torch.randint(5, VOCAB - 5, (2, 5), generator=torch.Generator().manual_seed(2))
    return {"input_features": feats, "decoder_input_ids": dec}


def clip_batch() -> dict[str, torch.Tensor]:
    return {**causal_batch(), **image_batch()}


_BERTISH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=VOCAB)
_DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=64)

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("bert", "BertConfig", "BertModel", _BERTISH),
    Family("roberta", "RobertaConfig", "RobertaModel", _BERTISH),
    Family("distilbert", "DistilBertConfig", "DistilBertModel",
           dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=VOCAB)),
    Family("albert", "AlbertConfig", "AlbertModel", {**_BERTISH, "embedding_size": 16}),
    Family("electra", "ElectraConfig", "ElectraModel", {**_BERTISH, "embedding_size": 16}),
    Family("deberta-v2", "DebertaV2Config", "DebertaV2Model", {**_BERTISH, "max_relative_positions": 16,
                                                               "position_buckets": 8}),
    Family("mpnet", "MPNetConfig", "MPNetModel", _BERTISH, attn=("eager",)),
    Family("gpt2", "GPT2Config", "GPT2LMHeadModel", dict(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                          n_positions=64), "causal", causal_batch),
    Family("gpt-neox", "GPTNeoXConfig", "GPTNeoXForCausalLM",
           dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                vocab_size=VOCAB, max_position_embeddings=64), "causal", causal_batch),
    Family("opt", "OPTConfig", "OPTForCausalLM", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                      ffn_dim=64, word_embed_proj_dim=32, vocab_size=VOCAB,
                                                      max_position_embeddings=64), "causal", causal_batch),
    Family("llama", "LlamaConfig", "LlamaForCausalLM", _DECODER, "causal", causal_batch),
    Family("mistral", "MistralConfig", "MistralForCausalLM", {**_DECODER, "sliding_window": 4}, "causal",
           causal_batch),
    Family("mixtral", "MixtralConfig", "MixtralForCausalLM", {**_DECODER, "num_local_experts": 4,
                                                              "num_experts_per_tok": 2}, "causal", causal_batch),
    Family("qwen2", "Qwen2Config", "Qwen2ForCausalLM", _DECODER, "causal", causal_batch),
    Family("qwen3", "Qwen3Config", "Qwen3ForCausalLM", {**_DECODER, "head_dim": 8}, "causal", causal_batch),
    Family("gemma", "GemmaConfig", "GemmaForCausalLM", {**_DECODER, "head_dim": 8}, "causal", causal_batch),
    Family("gemma2", "Gemma2Config", "Gemma2ForCausalLM", {**_DECODER, "head_dim": 8, "sliding_window": 4,
                                                           "attn_logit_softcapping": 5.0,
                                                           "final_logit_softcapping": 30.0}, "causal",
           causal_batch, attn=("eager",)),
    Family("gpt-oss", "GptOssConfig", "GptOssForCausalLM",
           {**_DECODER, "head_dim": 8, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention"]}, "causal", causal_batch, attn=("eager",)),
    Family("phi3", "Phi3Config", "Phi3ForCausalLM", {**_DECODER, "pad_token_id": 0}, "causal", causal_batch),
    Family("t5", "T5Config", "T5ForConditionalGeneration",
           dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=VOCAB,
                relative_attention_num_buckets=8, decoder_start_token_id=0), "seq2seq", seq2seq_batch),
    Family("bart", "BartConfig", "BartForConditionalGeneration",
           dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=VOCAB,
                max_position_embeddings=64), "seq2seq", seq2seq_batch),
    Family("whisper", "WhisperConfig", "WhisperForConditionalGeneration",
           dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=VOCAB,
                num_mel_bins=16, max_source_positions=30, max_target_positions=32,
                decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                begin_suppress_tokens=None, suppress_tokens=None), "audio", audio_batch),
    Family("vit", "ViTConfig", "ViTModel", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                intermediate_size=64, image_size=32, patch_size=8), "vision",
           image_batch),
    Family("clip", "CLIPConfig", "CLIPModel",
           dict(text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 vocab_size=VOCAB, max_position_embeddings=16),
                vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, image_size=32, patch_size=8),
                projection_dim=16), "vision", clip_batch),
]}


def output(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's main output as one float tensor (logits, else hidden states, else embeddings)."""
    with torch.no_grad():
        out = model(**inputs)
    for key in ("logits", "last_hidden_state", "logits_per_image"):
        t = getattr(out, key, None)
        if t is not None:
            return t
    raise TypeError(f"no known output in {type(out).__name__}")
