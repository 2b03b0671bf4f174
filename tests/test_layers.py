"""The package is layered: a subpackage imports only from lower layers, never sideways or up.

Every import counts, module-level and inside functions, and so does a string that names a
module of the package (``"nnlut.kernels"``, ``"nnlut.fixed._table:reader"``: an import by
name); imports only for type hints (under ``if TYPE_CHECKING:``) are exempt. The root's private
modules (``nnlut._errors`` and friends) are the bottom layer; the root ``nnlut/__init__.py`` is
a lazy facade over everything.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nnlut"

# lower number = lower layer; subpackages on one layer must not import each other
LAYERS: dict[str, int] = {
    "<root>": 0,  # nnlut/_*.py: errors, logging, files, text tables, plotting
    "core": 1,
    "ibert": 1,
    "fitting": 2,
    "kernels": 2,
    "fixed": 3,
    "ops": 4,
    "models": 5,
    "calibration": 6,
    "export": 6,  # torch.export programs of approximated models
    "eval": 7,
    "hw": 8,  # records real unit inputs with the evaluation models
    "system": 8,
    "report": 9,
    "cli": 10,
}


def _unit(path: Path, src: Path) -> str:
    rel = path.relative_to(src)
    return rel.parts[0] if len(rel.parts) > 1 else "<root>"


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


_BY_NAME = re.compile(r"nnlut(?:\.[A-Za-z_]\w*)+(?::\w+)?")


def _is_module(module: str, src: Path) -> bool:
    path = src.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skip.update(id(n) for n in ast.walk(inner))
    return skip


def _imports(path: Path, src: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every nnlut import in one file."""
    name, is_pkg = _module_name(path, src)
    package = name if is_pkg else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            if full == "nnlut":
                found += [(node.lineno, f"nnlut.{a.name}") for a in node.names]
            elif full.startswith("nnlut."):
                found.append((node.lineno, full))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("nnlut.")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _BY_NAME.fullmatch(node.value):
            module = node.value.partition(":")[0]
            if _is_module(module, src):  # a module named in a string: imported by name somewhere
                found.append((node.lineno, module))
    return found


def _target_unit(module: str, src: Path) -> str:
    head = module.split(".")[1]
    return "<root>" if head.startswith("_") or (src / f"{head}.py").exists() else head


def _violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        if path == src / "__init__.py" or path == src / "__main__.py":
            continue  # the lazy facade and the entry point sit above everything
        here = _unit(path, src)
        if here not in LAYERS:
            bad.append(f"{path.relative_to(src)}: subpackage {here!r} has no layer in LAYERS")
            continue
        for line, module in _imports(path, src):
            there = _target_unit(module, src)
            if there == here:
                continue
            if there not in LAYERS:
                bad.append(f"{path.relative_to(src)}:{line} imports {module} (no layer)")
            elif LAYERS[there] >= LAYERS[here]:
                bad.append(f"{path.relative_to(src)}:{line} ({here}, layer {LAYERS[here]}) imports {module} "
                           f"({there}, layer {LAYERS[there]})")
    return bad


def test_every_subpackage_has_a_layer():
    units = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert units <= set(LAYERS), f"subpackages without a layer: {sorted(units - set(LAYERS))}"


def test_no_import_goes_sideways_or_up():
    bad = _violations()
    assert not bad, "layering violations:\n" + "\n".join(bad)


@pytest.mark.parametrize("snippet", [
    "from ..models._swap import fitted_table\n",
    "def f():\n    from ..cli._common import format_table\n",
    'LOADER = "nnlut.models._swap:fitted_table"\n',
    'import importlib\nm = importlib.import_module("nnlut.models")\n',
])
def test_the_checker_sees_function_level_and_relative_imports(tmp_path, snippet):
    pkg = tmp_path / "nnlut" / "core"
    pkg.mkdir(parents=True)
    (tmp_path / "nnlut" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (tmp_path / "nnlut" / "models").mkdir()
    (tmp_path / "nnlut" / "models" / "__init__.py").write_text("")
    (tmp_path / "nnlut" / "models" / "_swap.py").write_text("")
    (pkg / "_x.py").write_text(snippet)
    assert _violations(tmp_path / "nnlut"), "an upward import from core was not reported"
