"""Calibration folders: the tables of a calibrated model and a manifest that says what they
were made for.

Layout (version 2)::

    folder/
      manifest.json      {"format": "nnlut.calibration", "version": 2,
                          "modules": {name: {"op", "method", "function", "shape", "tables": {role: file}}},
                          "calls": {"method", "kinds", "tables": {function: file},
                                    "sites": {site: {function: file}}, "exact": [site or pattern]},
                          "files": {file: {"sha256", "function", "entries", "number_format"}}}
      tables/000_gelu.json ...
      .nnlut-output.json (the list of files nnlut wrote; see nnlut._files)

``number_format`` is the table's format (``int8:P`` names an INT8 table's input scale
``2**-P``, chosen by calibration; None: a float table). ``shape`` is the module's own
parameter shapes (``{"weight": [384], ...}``; empty for activations and attention softmaxes).
Loading checks, before any module is touched: the manifest's types, that every table path
stays inside the folder, every file's SHA-256 and number format, that each role gets a table
of the right function (a softmax's ``exp`` role an ``exp`` table), and that the model has
exactly the manifest's modules with the same op kinds and shapes.

``calls`` (present when the model's non-linear calls run on tables): the call kinds served,
the tables every call site reads by function, the sites' own tables (calibration refits one
per site unless tables are shared) and the call sites an override left exact.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from torch import nn

from .._errors import NNLUTError
from .._files import OutputFolder, parse_json, read_bytes, read_json
from ..core._io import table_from_data
from ..core._table import Table
from ..models._registry import TABLE_METHODS, op_names, op_spec

MANIFEST = "manifest.json"
FORMAT = "nnlut.calibration"
VERSION = 2
_METHODS = TABLE_METHODS  # the registered methods with fitted tables (a live view)


def _shape(module: nn.Module | None) -> dict[str, list[int]]:
    if module is None:
        return {}
    return {n: list(p.shape) for n, p in module.named_parameters(recurse=False)}


def _format_of(table: Any) -> str | None:
    """The number format a table evaluates in, as a spec string where it has one (``int8:3``
    for an INT8 table at input scale 2**-3), None for a float table: each kind says its own
    (``number_format``)."""
    return getattr(table, "number_format", None)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_calibration(model: nn.Module, folder: str | os.PathLike[str], *,
                     extra: Mapping[str, str] | None = None) -> Path:
    """Write the model's tables and a manifest into ``folder``; returns its path.

    ``extra`` maps further file names (inside the folder) to text written with the result,
    e.g. ``{"report.json": ...}``; they are part of the same atomic result.

    The folder appears complete or not at all (an interruption leaves the previous result).
    ``folder`` must be new, empty, or a folder nnlut wrote: nnlut replaces only its own files
    there and refuses a non-empty folder of someone else's files.
    """
    from ._calibrate import _call_mode, _lut_modules

    mode = _call_mode(model)
    mods = _lut_modules(model) if mode is None else _lut_candidates(model)
    with OutputFolder(folder, kind="calibration") as out:
        files: dict[tuple[str, int], str] = {}
        records: dict[str, dict[str, Any]] = {}
        modules: dict[str, Any] = {}

        def file_of(table: Table, user: str = "modules") -> str:
            # modules and calls never share a file: a module entry removed leaves its files unused
            key = (user, id(table))
            if key not in files:
                rel = f"tables/{len(files):03d}_{table.function}.json"
                data = (json.dumps(table.to_dict(), indent=1, allow_nan=False) + "\n").encode()
                out.write_bytes(rel, data)
                files[key] = rel
                records[rel] = {"sha256": _sha256(data), "function": table.function, "entries": table.entries,
                                "number_format": _format_of(table)}
            return files[key]
        for name, m in mods.items():
            entry: dict[str, Any] = {"op": m.op, "method": m.kernel.method, "function": getattr(m.kernel, "function", None),
                                     "shape": _shape(m.__dict__.get("original")), "tables": {}}
            for role, table in m.kernel.tables.items():
                entry["tables"][role] = file_of(table)
            modules[name] = entry
        manifest = {"format": FORMAT, "version": VERSION, "modules": modules, "files": records}
        if mode is not None:
            manifest["calls"] = _calls_entry(mode, file_of)
        out.write_text(MANIFEST, json.dumps(manifest, indent=1) + "\n")
        for rel, text in (extra or {}).items():
            if rel == MANIFEST or rel in records:
                raise NNLUTError(f"extra file {rel!r} would overwrite a calibration file")
            _inside(out.path, rel, "save_calibration")
            out.write_text(rel, text)
    return out.folder


def _lut_candidates(model: nn.Module) -> dict[str, Any]:
    from ..ops._modules import approx_modules

    return {n: m for n, m in approx_modules(model).items() if m.kernel.tables}


def _calls_entry(mode: Any, file_of: Any) -> dict[str, Any]:
    overrides = mode.config.overrides if mode.config is not None else {}
    exact = [k for k, v in overrides.items() if v is None and "#" in k]
    exact += sorted(s for s, hit in mode.left_exact.items() if hit and s not in exact)
    return {"method": mode.method, "kinds": sorted(mode.kinds),
            "tables": {f: file_of(t, "calls") for f, t in sorted(mode.tables.items())},
            "sites": {site: {f: file_of(t, "calls") for f, t in sorted(own.items())}
                      for site, own in sorted(mode.site_tables.items())},
            "exact": exact}


def _check_calls(calls: Any, tables: dict[str, Table], where: str) -> set[str]:
    """Validate a manifest's ``calls`` entry; returns the table files it uses."""
    from ..ops._calls import CALLS

    at = f"{where}: 'calls'"
    _check_type(calls, dict, where, "'calls'")
    if calls.get("method") not in _METHODS:
        raise NNLUTError(f"{at}: unknown method {calls.get('method')!r}; allowed: {', '.join(_METHODS)}")
    kinds = _check_type(calls.get("kinds"), list, at, "'kinds'")
    bad = [k for k in kinds if not isinstance(k, str) or k not in CALLS]
    if bad:
        raise NNLUTError(f"{at}: unknown call kind(s) {', '.join(map(repr, bad))}; allowed: {', '.join(CALLS)}")
    exact = _check_type(calls.get("exact", []), list, at, "'exact'")
    if not all(isinstance(k, str) for k in exact):
        raise NNLUTError(f"{at}: 'exact' must be a list of call site names or patterns")
    sites = _check_type(calls.get("sites", {}), dict, at, "'sites'")
    if not all(isinstance(k, str) and "#" in k for k in sites):
        raise NNLUTError(f"{at}: 'sites' must map call site names (<module path>#<call>) to tables")
    used = set()
    for name, by_fn in [("tables", calls.get("tables")), *((f"sites[{k!r}]", v) for k, v in sites.items())]:
        _check_type(by_fn, dict, at, repr(name))
        for fn, rel in by_fn.items():
            if not isinstance(rel, str) or rel not in tables:
                raise NNLUTError(f"{at}: {name}[{fn!r}] refers to {rel!r}, which is not a table file listed in 'files'")
            if tables[rel].function != fn:
                raise NNLUTError(f"{at}: {name}[{fn!r}] needs a {fn} table, but {rel!r} holds {tables[rel].function}")
            used.add(rel)
    needs = {f for k in kinds for f in CALLS[k].functions}
    missing = sorted(needs - set(calls["tables"]))
    if missing:
        raise NNLUTError(f"{at}: the call kinds need tables for {', '.join(missing)}, which 'tables' does not give")
    return used


def _restore_calls(model: nn.Module, calls: dict[str, Any], tables: dict[str, Table]) -> None:
    from ..models._calls import of_model

    mode = of_model(model)
    mode.kinds = frozenset(calls["kinds"])
    mode.method = calls["method"]
    mode.tables = {f: tables[rel] for f, rel in calls["tables"].items()}
    mode.site_tables = {site: {f: tables[rel] for f, rel in own.items()} for site, own in calls.get("sites", {}).items()}


def _inside(folder: Path, rel: Any, where: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise NNLUTError(f"{where}: a table path must be a non-empty string, got {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel or "\x00" in rel:
        raise NNLUTError(f"{where}: table path {rel!r} leaves the folder (only relative paths inside it are allowed)")
    path = folder / pure
    try:
        real = path.resolve(strict=False)
        real.relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        raise NNLUTError(f"{where}: table path {rel!r} leads outside the folder") from None
    return path


def _check_type(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise NNLUTError(f"{where}: {what} must be {names.replace('dict', 'an object').replace('str', 'a string')}, "
                         f"got {type(value).__name__}")
    return value


def read_manifest(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Table]]:
    """Validate a calibration folder; returns (manifest, tables by file name).

    Every problem raises one :class:`NNLUTError` naming the file, the module and the field.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise NNLUTError(f"calibration folder {str(folder)!r} does not exist or is not a folder")
    if not path.exists():
        raise NNLUTError(f"{folder} is not a calibration folder: {MANIFEST} is missing")
    manifest = read_json(path, "calibration manifest")
    where = str(path)
    _check_type(manifest, dict, where, "the manifest")
    if manifest.get("format") != FORMAT:
        raise NNLUTError(f"{where}: 'format' must be {FORMAT!r}")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        raise NNLUTError(f"{where}: unknown version {manifest.get('version')!r}; this nnlut reads {VERSION}")
    modules = _check_type(manifest.get("modules"), dict, where, "'modules'")
    records = _check_type(manifest.get("files"), dict, where, "'files'")
    if not modules and "calls" not in manifest:
        raise NNLUTError(f"{where}: 'modules' must be a non-empty object")
    tables: dict[str, Table] = {}
    for rel, rec in records.items():
        f = _inside(folder, rel, where)
        _check_type(rec, dict, where, f"'files'[{rel!r}]")
        if not os.path.lexists(f) or f.is_dir():
            raise NNLUTError(f"{where}: table file {rel!r} is missing")
        try:
            data = read_bytes(f, "table file")
        except NNLUTError as e:
            raise NNLUTError(f"{where}: {e}") from None
        if _sha256(data) != rec.get("sha256"):
            raise NNLUTError(f"{where}: table file {rel!r} does not match its SHA-256 in the manifest "
                             "(edited, swapped or replaced)")
        obj = parse_json(data, f"table file {str(f)!r}")
        table = table_from_data(obj, f"table file {str(f)!r}")
        if table.function != rec.get("function") or table.entries != rec.get("entries"):
            raise NNLUTError(f"{where}: table file {rel!r} holds a {table.entries}-entry {table.function} table, "
                             f"the manifest says {rec.get('entries')!r}-entry {rec.get('function')!r}")
        if "number_format" in rec and rec["number_format"] != _format_of(table):
            raise NNLUTError(f"{where}: table file {rel!r} is in number format {_format_of(table) or 'float'}, "
                             f"the manifest says {rec['number_format'] or 'float'}")
        tables[rel] = table
    for name, entry in modules.items():
        at = f"{where}: module {name!r}"
        _check_type(entry, dict, at, "the entry")
        op = entry.get("op")
        if not isinstance(op, str) or op not in op_names():
            raise NNLUTError(f"{at}: unknown op {op!r}; allowed: {', '.join(op_names())}")
        if entry.get("method", "nnlut") not in _METHODS:
            raise NNLUTError(f"{at}: unknown method {entry.get('method')!r}; allowed: {', '.join(_METHODS)}")
        fn = entry.get("function")
        if fn is not None and not isinstance(fn, str):
            raise NNLUTError(f"{at}: 'function' must be a function name or null, got {fn!r}")
        shape = _check_type(entry.get("shape"), dict, at, "'shape'")
        for k, v in shape.items():
            if not (isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)):
                raise NNLUTError(f"{at}: 'shape'[{k!r}] must be a list of sizes, got {v!r}")
        roles = _check_type(entry.get("tables"), dict, at, "'tables'")
        needs = op_spec(op).tables_for(fn)  # role -> the function its table approximates
        for role, rel in roles.items():
            if role not in needs:
                raise NNLUTError(f"{at}: unknown table role {role!r} for op {op!r}; allowed: {', '.join(needs)}")
            if not isinstance(rel, str) or rel not in tables:
                raise NNLUTError(f"{at}: role {role!r} refers to {rel!r}, which is not a table file listed in 'files'")
            if tables[rel].function != needs[role]:
                raise NNLUTError(f"{at}: role {role!r} needs a {needs[role]} table, but {rel!r} holds "
                                 f"{tables[rel].function}")
        if set(roles) != set(needs):
            raise NNLUTError(f"{at}: op {op!r} needs tables for {', '.join(needs)}, the manifest gives "
                             f"{', '.join(map(repr, roles)) or 'none'}")
    used = {rel for entry in modules.values() for rel in entry["tables"].values()}
    if "calls" in manifest:
        used |= _check_calls(manifest["calls"], tables, where)
    unused = sorted(set(tables) - used)
    if unused:  # a module's entry was removed or renamed: its tables are left without an owner
        raise NNLUTError(f"{where}: table files {', '.join(map(repr, unused))} are listed in 'files' but no "
                         "module uses them (the manifest is incomplete)")
    return manifest, tables


def check_model(model: nn.Module, manifest: dict[str, Any], folder: str | os.PathLike[str]) -> None:
    """Refuse a manifest made for another model: the model must have exactly the manifest's
    modules (among the ops it names), with the same op kinds and parameter shapes."""
    from ..models._sites import find_sites

    where = f"calibration folder {str(folder)!r}"
    modules = manifest["modules"]
    ops = {e["op"] for e in modules.values()}
    sites = {s.name: s for s in find_sites(model, verify=False) if s.op in ops}
    for name, entry in modules.items():
        site = sites.get(name)
        if site is None:
            raise NNLUTError(f"{where}: module {name!r} of the manifest is not a {entry['op']} op of this model "
                             "(the manifest was made for another model)")
        if site.op != entry["op"]:
            raise NNLUTError(f"{where}: module {name!r} is a {site.op} op here, the manifest says {entry['op']}")
        fn = entry.get("function")
        if fn is not None and fn != site.function:
            raise NNLUTError(f"{where}: module {name!r} computes {site.function or entry['op']} here, the manifest's "
                             f"tables are for {fn} (made for another model)")
        shape = _shape(site.module) if site.kind == "module" else {}
        if shape != entry["shape"]:
            raise NNLUTError(f"{where}: module {name!r} has parameter shapes {shape} here, the manifest says "
                             f"{entry['shape']} (made for another model)")
    extra = sorted(set(sites) - set(modules))
    if extra:
        raise NNLUTError(f"{where}: the model's {len(extra)} {'/'.join(sorted(ops))} op(s) {extra[:3]} are not in the "
                         "manifest (the manifest was made for another model)")


def load_calibration(model: nn.Module, folder: str | os.PathLike[str]) -> Any:
    """Approximate a fresh ``model`` with the calibrated tables of ``folder``: the same
    modules get the same tables, so outputs equal the calibrated model's exactly. The folder
    and the model are checked first (see the module docstring); nothing is changed on error."""
    from ..models import ApproxConfig, approximate_

    manifest, tables = read_manifest(folder)
    check_model(model, manifest, folder)
    overrides: dict[str, ApproxConfig | None] = {}
    ops = set()
    for name, entry in manifest["modules"].items():
        op = entry["op"]
        ops.add(op)
        roles = op_spec(op).tables_for(entry.get("function"))
        fixed = {roles[role]: tables[rel] for role, rel in entry["tables"].items()}
        overrides[name] = ApproxConfig(method=entry.get("method", "nnlut"), tables=fixed,
                                       entries=next(iter(fixed.values())).entries)
    calls = manifest.get("calls")
    if calls is None:
        overrides[".*"] = None
        return approximate_(model, ApproxConfig(ops=tuple(sorted(ops)), overrides=overrides, calls=False))
    overrides.update(dict.fromkeys(calls.get("exact", [])))
    overrides["[^#]*"] = None  # modules not in the manifest stay exact; call sites read the manifest's tables
    report = approximate_(model, ApproxConfig(overrides=overrides))
    _restore_calls(model, calls, tables)
    return report
