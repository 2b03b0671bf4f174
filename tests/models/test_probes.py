"""Activation modules of classes nnlut does not list are found by what they compute."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nnlut
from nnlut.models._trace import trace_coverage


class BloomStyleGelu(nn.Module):  # the tanh GELU written out, as BLOOM's BloomGelu does
    def forward(self, x):
        return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


class MySwish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class ErfGeluFn(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))


class FakeGelu(nn.Module):  # named like a GELU, computes something else
    def forward(self, x):
        return torch.relu(x)


class Net(nn.Module):
    def __init__(self, act: nn.Module):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.act = act
        self.b = nn.Linear(16, 8)

    def forward(self, x):
        return self.b(self.act(self.a(x)))


@pytest.mark.parametrize(("act", "op"), [(BloomStyleGelu(), "gelu"), (MySwish(), "silu"), (ErfGeluFn(), "gelu")])
def test_unlisted_activation_class_is_replaced_and_restored(act, op):
    torch.manual_seed(0)
    net = Net(act).eval()
    x = torch.randn(64, 8) * 3
    ref = net(x).detach()
    report = nnlut.approximate_(net)
    assert report.counts() == {op: 1}
    assert not report.left_exact
    y = net(x).detach()
    assert not torch.equal(y, ref)  # the table runs, not the original
    assert (y - ref).abs().max() < 0.05 * ref.abs().max()
    nnlut.restore_(net)
    assert torch.equal(net(x), ref)


def test_activation_named_like_gelu_computing_else_is_left_exact_and_reported():
    net = Net(FakeGelu()).eval()
    report = nnlut.approximate_(net)
    assert report.counts() == {}
    assert [r["op"] for r in report.left_exact] == ["FakeGelu"]


class GatedRMSNorm(nn.Module):  # an RMSNorm-shaped module whose forward needs a second tensor
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = 1e-6

    def forward(self, x, gate):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x * torch.nn.functional.silu(gate)


class GatedBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.norm = GatedRMSNorm(8)

    def forward(self, x):
        return self.norm(self.a(x), x)


def _calls_on_tables(net: nn.Module, x: torch.Tensor, ref: torch.Tensor) -> None:
    """The module was not swapped for a one-tensor op (that would crash or compute something
    else): it runs its own forward, whose rsqrt, silu and division calls run on tables."""
    y = net(x).detach()
    assert float((y - ref).abs().max()) <= 0.01 * float(ref.abs().max())
    assert trace_coverage(net, x).of("exact") == []
    nnlut.restore_(net)
    assert torch.equal(net(x), ref)


def test_norm_needing_two_inputs_is_left_exact_not_a_crash():
    net = GatedBlock().eval()
    x = torch.randn(4, 8)
    ref = net(x).detach()
    report = nnlut.approximate_(net)
    assert report.counts() == {}
    assert "GatedRMSNorm" in [r["op"] for r in report.left_exact]
    _calls_on_tables(net, x, ref)


class OptionalGateNorm(nn.Module):  # a plain RMSNorm when called alone, gated when given a gate
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = 1e-6

    def forward(self, hidden_states, gate=None):
        if gate is not None:
            hidden_states = hidden_states * torch.nn.functional.silu(gate)
        x = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x


class OptionalGateBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.norm = OptionalGateNorm(8)

    def forward(self, x):
        return self.norm(self.a(x), gate=x)


def test_norm_with_an_optional_second_input_is_not_replaced():
    net = OptionalGateBlock().eval()
    x = torch.randn(4, 8)
    ref = net(x).detach()
    report = nnlut.approximate_(net)
    assert report.counts() == {}
    (entry,) = [r for r in report.left_exact if r["op"] == "OptionalGateNorm"]
    assert "gate" in entry["why"]
    _calls_on_tables(net, x, ref)


class PlaceholderWeightRMSNorm(nn.Module):  # holds a weight it never applies, sized for another width
    def __init__(self, dim: int):
        super().__init__()
        self.eps = 1e-6
        self.weight = nn.Buffer(torch.full((dim,), 3.0), persistent=False)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class PlaceholderBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 5)
        self.norm = PlaceholderWeightRMSNorm(16)

    def forward(self, x):
        return self.norm(self.a(x))


def test_rmsnorm_ignoring_its_weight_is_replaced_without_it():
    torch.manual_seed(0)
    net = PlaceholderBlock().eval()
    x = torch.randn(6, 8)
    ref = net(x).detach()
    report = nnlut.approximate_(net, nnlut.ApproxConfig(method="exact"))
    assert report.counts() == {"rmsnorm": 1}
    assert torch.allclose(net(x), ref, atol=1e-6)
    nnlut.restore_(net)
    nnlut.approximate_(net)
    y = net(x).detach()
    assert (y - ref).abs().max() < 0.02 * ref.abs().max()


def test_transformers_own_variants():
    """The classes behind the cases above, as transformers ships them (BLOOM, FalconMamba, Zamba2)."""
    pytest.importorskip("transformers")
    from transformers.models.bloom.modeling_bloom import BloomGelu
    from transformers.models.falcon_mamba.modeling_falcon_mamba import FalconMambaWeightlessRMSNorm
    from transformers.models.zamba2.modeling_zamba2 import Zamba2RMSNormGated

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 12)
            self.gelu = BloomGelu()
            self.dt_norm = FalconMambaWeightlessRMSNorm(32)  # placeholder weight of another width
            self.gated = Zamba2RMSNormGated(12, group_size=12)

        def forward(self, x):
            h = self.a(x)
            return self.gated(self.dt_norm(self.gelu(h)), gate=h)

    torch.manual_seed(0)
    net = Block().eval()
    x = torch.randn(5, 8)
    ref = net(x).detach()
    report = nnlut.approximate_(net, nnlut.ApproxConfig(method="exact"))
    assert report.counts() == {"gelu": 1, "rmsnorm": 1}
    assert [r["op"] for r in report.left_exact] == ["Zamba2RMSNormGated"]
    assert torch.allclose(net(x), ref, atol=1e-6)
    nnlut.restore_(net)
    assert torch.equal(net(x), ref)


class NoAffineLayerNorm(nn.Module):  # OLMo's: a layer norm with neither weight nor bias
    def __init__(self, dim: int):
        super().__init__()
        self.normalized_shape = (dim,)

    def forward(self, x):
        return torch.nn.functional.layer_norm(x, self.normalized_shape, None, None, eps=1e-5)


class ChannelsFirstLayerNorm(nn.Module):  # normalises dimension 1, not the last one
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = 1e-6

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None] * x + self.bias[:, None]


def test_layer_norm_found_by_what_it_computes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), NoAffineLayerNorm(16), nn.Linear(16, 4)).eval()
    x = torch.randn(5, 7, 8) * 4 + 1
    ref = net(x).detach()
    report = nnlut.approximate_(net, nnlut.ApproxConfig(method="exact"))
    assert report.counts() == {"layernorm": 1}
    assert torch.allclose(net(x), ref, atol=1e-5)
    nnlut.restore_(net)
    report = nnlut.approximate_(net)
    y = net(x).detach()
    assert not torch.equal(y, ref) and (y - ref).abs().max() < 0.02 * ref.abs().max()


def test_channels_first_norm_is_not_taken_for_a_layer_norm():
    net = nn.Sequential(nn.Conv1d(4, 6, 1), ChannelsFirstLayerNorm(6)).eval()
    x = torch.randn(2, 4, 10)
    ref = net(x).detach()
    report = nnlut.approximate_(net)
    assert report.counts() == {}
    assert [r["op"] for r in report.left_exact] == ["ChannelsFirstLayerNorm"]
    _calls_on_tables(net, x, ref)
