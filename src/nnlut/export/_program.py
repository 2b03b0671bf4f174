"""An approximated model as a ``torch.export`` program in which every table is visible.

Each approximated site is one ``torch.ops.nnlut.*`` node whose table tensors (breakpoints,
slopes, intercepts) are inputs of the node, lifted by ``torch.export`` as constants of the
program, and whose layout (kind, domain, tails, limits, input scaling, number format) is the
node's string argument. :func:`table_sites` lists them for a compiler that maps each onto a
LUT unit. The program saves with ``torch.export.save`` and runs after ``torch.export.load`` in
any process that has imported nnlut (which registers the ops), with the eager model's outputs;
``program.run_decompositions(nnlut.export.decompositions())`` gives the same program in
standard aten operations only, for runtimes without nnlut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._errors import NNLUTError
from ..kernels import _ops  # noqa: F401  (registers the ops before a program is loaded)
from ..kernels._decomp import decompositions


class LastHiddenState(torch.nn.Module):
    """``model(input_ids=..., attention_mask=...).last_hidden_state`` as a module of plain
    tensors in and out: what ``torch.export`` and ONNX export take from a HuggingFace encoder or
    decoder."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


@dataclass(frozen=True)
class TableSite:
    """One table op of a program: ``node`` (its name in the graph), ``op`` (``pwl``,
    ``fixed``, ``softmax``, ...), and per table role (``table``, ``exp``, ``reciprocal``,
    ``rsqrt``) its layout (a dict), entry count and ``tensors``: where its breakpoints, slopes
    and intercepts come from (``buffer:<module path>.<role>_breakpoints`` for an approximated
    module's buffers, ``constant:<name>`` for tables lifted as constants, else the node name)."""

    node: str
    op: str
    tables: Mapping[str, Mapping[str, Any]]


def _check_inputs(model: Any, args: Any, kwargs: Any) -> tuple[tuple, dict]:
    if not isinstance(model, torch.nn.Module):
        raise NNLUTError(f"export takes a torch.nn.Module, got {type(model).__name__}")
    if isinstance(args, torch.Tensor):
        args = (args,)
    if not isinstance(args, Sequence):
        raise NNLUTError(f"example inputs must be a tensor or a tuple of them, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise NNLUTError(f"example keyword inputs must be a dict, got {type(kwargs).__name__}")
    return tuple(args), dict(kwargs or {})


def export_program(model: torch.nn.Module, args: Any, kwargs: Mapping[str, Any] | None = None, *,
                   path: str | os.PathLike[str] | None = None, dynamic_shapes: Any = None) -> Any:
    """``torch.export.export`` of ``model`` on example inputs ``args`` (a tensor or a tuple)
    and ``kwargs``, with every approximated site one nnlut node; saved to ``path`` (a ``.pt2``
    file, written atomically) when given. Returns the ``ExportedProgram``."""
    args, kwargs = _check_inputs(model, args, kwargs)
    try:
        with torch.no_grad():
            program = torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    except NNLUTError:
        raise
    except Exception as e:  # torch.export's own errors are long; keep the first line and the type
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise NNLUTError(f"torch.export could not trace the model ({type(e).__name__}: {first[:300]})") from e
    if path is not None:
        save_program(program, path)
    return program


def save_program(program: Any, path: str | os.PathLike[str]) -> None:
    """``torch.export.save`` to ``path`` through a temporary file (no half-written program)."""
    import io

    from .._files import atomic_write_bytes

    buf = io.BytesIO()
    torch.export.save(program, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_program(path: str | os.PathLike[str]) -> Any:
    """``torch.export.load`` of a program saved by :func:`export_program` (the nnlut ops are
    registered by importing this module)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise NNLUTError(f"no exported program at {p!r}")
    try:
        return torch.export.load(p)
    except Exception as e:
        raise NNLUTError(f"{p!r} is not a loadable exported program ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None


def table_sites(program: Any) -> list[TableSite]:
    """Every nnlut op node of an exported program (or a ``torch.fx.GraphModule``) in graph
    order, with its tables' layouts."""
    graph = program.graph if hasattr(program, "graph") else program
    signature = getattr(program, "graph_signature", None)
    buffers = dict(signature.inputs_to_buffers) if signature is not None else {}
    constants = dict(getattr(signature, "inputs_to_lifted_tensor_constants", {}) or {}) if signature is not None else {}

    def source(value: Any) -> str:
        # a constant made inside the trace reaches the op through copies (lift_fresh_copy, detach_)
        while (getattr(value, "op", None) == "call_function" and value.args and hasattr(value.args[0], "op")
               and str(value.target).split(".")[-2] in ("lift_fresh_copy", "detach_", "detach", "clone")):
            value = value.args[0]
        name = getattr(value, "name", str(value))
        if name in buffers:
            return f"buffer:{buffers[name]}"
        if name in constants:
            return f"constant:{constants[name]}"
        return name

    sites = []
    for node in graph.nodes:
        if node.op != "call_function" or not str(node.target).startswith("nnlut."):
            continue
        op = str(node.target).split(".")[1]
        schema = node.target._schema
        tables: dict[str, dict[str, Any]] = {}
        args = list(zip(schema.arguments, node.args, strict=False))
        for i, (arg, value) in enumerate(args):
            if arg.name.endswith("_layout"):
                role = arg.name[: -len("_layout")]
                layout = json.loads(value)
                tensors = [source(v) for _, v in args[max(0, i - 3):i]]
                tables[role] = {"layout": layout, "entries": layout.get("entries"), "tensors": tensors}
        sites.append(TableSite(node.name, op, tables))
    return sites


__all__ = ["LastHiddenState", "TableSite", "decompositions", "export_program", "load_program", "save_program", "table_sites"]
