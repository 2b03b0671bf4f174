"""torch.jit.trace and torch.compile of an approximated HuggingFace model (tiny, random
weights): the traced or compiled model gives the eager model's outputs."""

from __future__ import annotations

import pytest
import torch

import nnlut
from nnlut.export import LastHiddenState
from tests.models.conftest import batch, tiny_hf


@pytest.fixture(scope="module")
def bert():
    model = tiny_hf("bert")
    nnlut.approximate_(model, nnlut.ApproxConfig())
    return LastHiddenState(model).eval()


# torch.jit is deprecated in this torch; tracing reads every attribute of HuggingFace's modules
# (one is a deprecated property) and HuggingFace's code warns about tracing its Python conditions
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_jit_trace_of_an_approximated_bert_gives_its_eager_outputs(bert):
    b = batch()
    with torch.no_grad():
        traced = torch.jit.trace(bert, (b["input_ids"], b["attention_mask"]), check_trace=False)
        kinds = {n.kind() for n in traced.inlined_graph.nodes()}
        assert {"nnlut::pwl", "nnlut::layernorm"} <= kinds and kinds & {"nnlut::attention_softmax",
                                                                          "nnlut::attention_softmax_", "nnlut::flash_attention"}
        ids2 = b["input_ids"].flip(1)
        assert torch.equal(traced(ids2, b["attention_mask"]), bert(ids2, b["attention_mask"]))


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_of_an_approximated_bert_gives_its_eager_outputs(bert):
    b = batch()
    torch._dynamo.reset()
    with torch.no_grad():
        ref = bert(b["input_ids"], b["attention_mask"])
        got = torch.compile(bert, backend="eager")(b["input_ids"], b["attention_mask"])
    assert torch.equal(got, ref)


def test_export_twice_in_one_process_and_eager_after_it():
    """torch.export traces with gradients on, through the differentiable torch form: tensors it
    makes there are the trace's own, so a second export and the eager model after it still work."""
    b = batch()
    args = (b["input_ids"], b["attention_mask"])
    for _ in range(2):
        model = tiny_hf("bert")
        nnlut.approximate_(model, nnlut.ApproxConfig())
        enc = LastHiddenState(model).eval()
        exported = torch.export.export(enc, args)
        with torch.no_grad():
            want = enc(*args)
            got = exported.module()(*args)
        assert type(want) is torch.Tensor  # a real tensor, not one left over from the trace
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
