"""nnlut's I-BERT kernels are bit-exact with I-BERT's own code (transformers' ``quant_modules``)
on random and edge-case inputs at 8-, 16- and 32-bit input scales."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers.models.ibert.quant_modules")

from . import reference as ref  # noqa: E402


def test_every_op_matches_ibert_bit_for_bit():
    res = ref.compare(3000)
    assert len(res) == 26 and all(n >= 2500 for _, n in res.values())
    bad = {k: v for k, v in res.items() if v[0]}
    assert not bad, bad


def test_the_comparison_can_fail():
    # the reference and the comparison see a one-LSB change in each op
    q = torch.tensor([-3000, -10, 0, 7, 5000])
    s = 2.0**-11
    assert torch.equal(ref.nnlut_gelu(q, s), ref.ref_gelu(q, s))
    assert not torch.equal(ref.nnlut_gelu(q + 1, s), ref.ref_gelu(q, s))
    rows = torch.tensor([[0, -500, -2000, -9000]] * 2)
    e, p = ref.nnlut_softmax(rows, s)
    re, rs, rp = ref.ref_softmax(rows, s)
    assert torch.equal(e.double() * rs, re.reshape(e.shape)) and torch.equal(p.double(), rp.reshape(p.shape))
    assert not torch.equal((e + 1).double() * rs, re.reshape(e.shape))


def test_ibert_op_output_is_the_reference_kernel_on_its_quantised_input():
    # the float-in/float-out GELU: nnlut's quantiser then kernel equals I-BERT's quantiser then IntGELU
    from nnlut.ibert import IBertGELU, quantize

    x = torch.linspace(-7, 7, 4001, dtype=torch.float64)
    q, s = quantize(x, 16)
    qref = ref.ref_quantize(x, 16, s)
    assert torch.equal(q.double(), qref)
    keep = ref.exact(q, s)
    assert int(keep.sum()) > 3000
    assert torch.equal(IBertGELU()(x)[keep], ref.ref_gelu(q[keep], s))
