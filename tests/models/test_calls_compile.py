"""Non-linear calls on tables under torch.compile: dynamo traces the call mode, so the compiled
graph serves the same calls from the same tables as eager, with no graph break."""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

from nnlut.models import ApproxConfig, approximate_
from nnlut.models._calls import of_model
from nnlut.models._default_tables import fitted_table
from tests.models.test_calls import Calls, _inputs, _tiny


def _compiled(model, *args, **kwargs):
    torch._dynamo.reset()
    counters.clear()
    with torch.no_grad():
        out = torch.compile(model, backend="eager", fullgraph=True)(*args, **kwargs)  # fullgraph: no graph break
    return out


@pytest.fixture(scope="module")
def calls_model():
    torch.manual_seed(0)
    return Calls().eval()


def test_every_call_form_compiles_to_its_table(calls_model):
    model = copy.deepcopy(calls_model)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        exact = model(x)
    approximate_(model)
    with torch.no_grad():
        eager = model(x)
    got = _compiled(model, x)
    assert set(got) == set(eager)
    for k in eager:
        assert torch.equal(got[k], eager[k]), k
    assert not torch.equal(got["tanh"], exact["tanh"]) and not torch.equal(got["div_sum"], exact["div_sum"])
    assert torch.equal(got["static"], exact["static"])  # static work stays exact in the graph too
    assert torch.overrides._get_current_function_mode_stack() == []


def test_compiled_calls_follow_overrides_and_table_changes(calls_model):
    model = copy.deepcopy(calls_model)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        exact = model(x)
    approximate_(model, ApproxConfig(overrides={"<model>#tanh": None}))
    got = _compiled(model, x)
    assert torch.equal(got["tanh"], exact["tanh"])  # the override leaves it exact in the graph
    assert not torch.equal(got["sigmoid"], exact["sigmoid"])
    # a site's own table (what calibration makes), swapped in after compiling: the graph follows
    mode = of_model(model)
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        first = compiled(x)
    mode.site_tables["<model>#sigmoid"] = {"sigmoid": fitted_table("sigmoid", "nnlut", 4, "full")}
    with torch.no_grad():
        eager, again = model(x), compiled(x)
    assert not torch.equal(eager["sigmoid"], first["sigmoid"])
    assert torch.equal(again["sigmoid"], eager["sigmoid"])


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")  # transformers' Mamba
@pytest.mark.parametrize("kind", ["bloom", "gemma2", "mamba"])
def test_families_compile_to_the_eager_approximated_model(kind):
    model = _tiny(kind)
    x = _inputs()
    with torch.no_grad():
        exact = model(**x).logits
    approximate_(model)
    with torch.no_grad():
        eager = model(**x).logits
    got = _compiled(model, **x).logits
    assert torch.equal(got, eager)
    assert not torch.equal(got, exact)


def test_strict_export_runs_the_calls_exact_as_documented(calls_model):
    # strict export's dynamo mis-traces tensor methods under a torch function mode: the hooks
    # stand aside there and the program is the model with its own calls (the default export serves them)
    model = copy.deepcopy(calls_model)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        exact = model(x)
    approximate_(model)
    strict = torch.export.export(model, (x,), strict=True).module()(x)
    for k in exact:
        assert torch.allclose(strict[k], exact[k], rtol=1e-6, atol=1e-7), k
    default = torch.export.export(model, (x,)).module()(x)
    with torch.no_grad():
        eager = model(x)
    for k in eager:
        assert torch.equal(default[k], eager[k]), k
    assert not torch.equal(eager["tanh"], exact["tanh"])
