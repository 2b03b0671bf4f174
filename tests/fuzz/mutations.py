"""Hypothesis strategies that mutate valid JSON documents the way a careless edit, a broken
disk or a hostile file would: replaced, deleted and added fields, numbers nudged or blown out
of range, lists cut or reordered, wrong types, deep nesting, and raw-text damage."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

# values that break parsers: huge integers, non-finite floats, wrong types, deep nesting
_atoms = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0]),
    st.text(max_size=8), st.sampled_from(["inf", "-inf", "nan", "Infinity", "paper", "full", "clamp", "extend",
                                          "gelu", "exp", "rsqrt", "reciprocal", "nnlut.table", "../x.json", "/etc/passwd"]),
)
values = st.recursive(_atoms, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=12)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, max_edits: int = 3) -> str:
    """The text of ``doc`` after 1..max_edits random edits (the result may still be valid)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_edits))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        target = _get(doc, path)
        kind = draw(st.sampled_from(["replace", "delete", "add", "nudge", "scale", "cut", "reorder", "grow"]))
        if not path:  # the root: replace it or wrap it
            if kind in ("replace", "delete"):
                doc = draw(values)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if kind == "replace":
            parent[key] = draw(values)
        elif kind == "delete":
            del parent[key]
        elif kind == "add" and isinstance(target, dict):
            target[draw(st.text(max_size=6))] = draw(values)
        elif kind in ("nudge", "scale") and isinstance(target, (int, float)) and not isinstance(target, bool):
            try:
                if kind == "nudge":
                    parent[key] = target + draw(st.sampled_from([1e-12, -1e-9, 1e-6, 0.5, -1.0, 1e3]))
                else:
                    parent[key] = target * draw(st.sampled_from([-1.0, 0.0, 2.0, 1e300, -1e-300]))
            except OverflowError:  # a huge integer drawn earlier: keep it
                pass
        elif kind == "cut" and isinstance(target, list) and target:
            del target[draw(st.integers(0, len(target) - 1)):]
        elif kind == "reorder" and isinstance(target, list) and len(target) > 1:
            i, j = draw(st.integers(0, len(target) - 1)), draw(st.integers(0, len(target) - 1))
            target[i], target[j] = target[j], target[i]
        elif kind == "grow" and isinstance(target, list):
            target.append(copy.deepcopy(target[-1]) if target else draw(values))
        else:
            parent[key] = draw(values)
    text = json.dumps(doc, indent=1)  # NaN/Infinity literals included, as Python's json writes them
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "garbage", "nest", "bom", "bytes"]))
    if damage == "truncate":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif damage == "garbage":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(min_size=1, max_size=4)) + text[i:]
    elif damage == "nest":
        depth = draw(st.sampled_from([50, 5000, 200000]))
        text = "[" * depth + "1" + "]" * depth
    elif damage == "bom":
        text = "\ufeff" + text
    elif damage == "bytes":
        text = text.encode("utf-8", "surrogatepass").decode("latin-1") + "\udcff" if text else "\udcff"
    return text


def write_text(path: Any, text: str) -> None:
    """Write possibly invalid text (lone surrogates become undecodable bytes)."""
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
