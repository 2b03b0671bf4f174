"""Running the open hardware tools: Icarus Verilog, Yosys and OpenSTA."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .._errors import NNLUTError

LIBERTY_CANDIDATES = ("/usr/share/qflow/tech/osu018/osu018_stdcells.lib",)
CELLS_CANDIDATES = ("/usr/share/qflow/tech/osu018/osu018_stdcells.v",)
TOOLS = {"iverilog": "iverilog", "vvp": "vvp", "yosys": "yosys", "sta": "sta"}


def _find(candidates: tuple[str, ...], env: str) -> Path | None:
    if os.environ.get(env):
        p = Path(os.environ[env])
        return p if p.exists() else None
    return next((Path(c) for c in candidates if Path(c).exists()), None)


def liberty() -> Path | None:
    return _find(LIBERTY_CANDIDATES, "NNLUT_LIBERTY")


def cell_models() -> Path | None:
    return _find(CELLS_CANDIDATES, "NNLUT_CELL_MODELS")


def missing() -> list[str]:
    """What the hardware flow needs and this machine lacks (empty when all is there)."""
    out = [name for name, exe in TOOLS.items() if shutil.which(exe) is None]
    if liberty() is None:
        out.append("the OSU 0.18um liberty (Debian package qflow-tech-osu018)")
    if cell_models() is None:
        out.append("the OSU 0.18um cell models (Debian package qflow-tech-osu018)")
    return out


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        text = (r.stdout or r.stderr).strip().splitlines()
        return text[0] if text else "unknown"

    return {"iverilog": first_line(["iverilog", "-V"]), "yosys": first_line(["yosys", "-V"]),
            "sta": first_line(["sta", "-version"]), "liberty": str(liberty())}


def run(cmd: list[str], cwd: Path, timeout: int = 1800, what: str = "") -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise NNLUTError(f"{cmd[0]} is not installed; run scripts/setup.sh (it installs the hardware tools)") from None
    except subprocess.TimeoutExpired:
        raise NNLUTError(f"{what or cmd[0]} timed out after {timeout} s") from None
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip()[-1500:]
        raise NNLUTError(f"{what or cmd[0]} failed:\n{tail}")
    return r.stdout + r.stderr


def simulate(sources: list[Path], top: str, cwd: Path, what: str) -> tuple[int, int, str]:
    """Compile with iverilog and run with vvp; parse 'N passed, M failed'."""
    exe = cwd / f"{top}.vvp"
    run(["iverilog", "-g2012", "-o", str(exe), "-s", top, *map(str, sources)], cwd, what=f"iverilog ({what})")
    out = run(["vvp", "-n", str(exe)], cwd, what=f"simulation ({what})")
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    if not m:
        raise NNLUTError(f"simulation ({what}) printed no result line:\n{out[-800:]}")
    return int(m.group(1)), int(m.group(2)), out


def lint(verilog: Path, top: str, cwd: Path) -> list[str]:
    """Warnings from ``iverilog -Wall`` and Yosys' design checks (``check -assert`` fails on
    multiple drivers, undriven nets or combinational loops); returns the warnings (empty when
    clean)."""
    out = run(["iverilog", "-g2012", "-Wall", "-o", os.devnull, "-s", top, str(verilog)], cwd, what=f"iverilog lint ({top})")
    warnings = [ln for ln in out.splitlines() if "warning" in ln.lower()]
    run(["yosys", "-q", "-p", f"read_verilog -sv {verilog.name}; hierarchy -top {top}; proc; check -assert"], cwd,
        what=f"yosys check ({top})")
    return warnings


def synthesize(verilog: Path, top: str, cwd: Path) -> tuple[float, Path, dict[str, int]]:
    """Yosys synthesis mapped to the liberty; returns (area um^2, netlist, cell counts)."""
    lib = liberty()
    if lib is None:
        raise NNLUTError("no liberty file (install qflow-tech-osu018)")
    netlist = cwd / f"{top}_netlist.v"
    script = cwd / f"{top}.ys"
    script.write_text(
        f"read_verilog -sv {verilog.name}\n"
        f"synth -top {top} -flatten\n"
        f"dfflibmap -liberty {lib}\n"
        f"abc -liberty {lib}\n"
        "opt_clean -purge\n"
        f"tee -o {top}_stat.txt stat -liberty {lib}\n"
        f"write_verilog -noattr -noexpr {netlist.name}\n"
        # OpenSTA's reader wants bit-level nets and no wire-to-wire assigns: a second netlist
        "splitnets -ports -format _\n"
        "insbuf -buf BUFX2 A Y\n"
        "opt_clean -purge\n"
        f"write_verilog -noattr -noexpr {top}_sta.v\n"
    )
    run(["yosys", "-q", "-s", script.name], cwd, what=f"yosys ({top})")
    stat = (cwd / f"{top}_stat.txt").read_text()
    m = re.search(r"Chip area for (?:module|top module) '\\?[^']*':\s*([0-9.]+)", stat)
    if not m:
        raise NNLUTError(f"yosys reported no chip area for {top}")
    cells = {k: int(v) for k, v in re.findall(r"^\s+([A-Z]\w*)\s+(\d+)\s*$", stat, flags=re.M)}
    return float(m.group(1)), netlist, cells


def sta_nets(top: str, cwd: Path) -> tuple[set[str], set[str]]:
    """(every net, the input ports) of the OpenSTA netlist (escaped names without their
    backslash)."""
    text = (cwd / f"{top}_sta.v").read_text()
    names: dict[str, set[str]] = {"wire": set(), "input": set(), "output": set()}
    for m in re.finditer(r"^\s*(wire|input|output)\s+(\\\S+|[A-Za-z_][\w$]*)\s*;", text, flags=re.M):
        names[m.group(1)].add(m.group(2).lstrip("\\"))
    return names["wire"] | names["input"] | names["output"], names["input"]


def simulated_power(top: str, cwd: Path, period_ns: float, activity_tcl: str, clock_gates: str | None = None) -> float:
    """OpenSTA total power (W) at ``period_ns`` with the given per-net activities;
    ``clock_gates``: the cell type holding clock-gate enables that stayed 0 through the
    simulated window (no register writes), held at 0 so that OpenSTA does not charge the
    gated clocks as toggling with the clock."""
    lib = liberty()
    (cwd / f"{top}_activity.tcl").write_text(activity_tcl)
    tcl = cwd / f"{top}_power.tcl"
    tcl.write_text(
        f"read_liberty {lib}\nread_verilog {top}_sta.v\nlink_design {top}\n"
        f"create_clock -name clk -period {period_ns} [get_ports clk]\n"
        # inputs launched by the clock: without this the logic fed by the input ports has no
        # clock, and OpenSTA turns its per-period activities into almost no power
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]\n"
        f"source {top}_activity.tcl\n"
        + (f"set_case_analysis 0 [get_pins -of_objects [get_cells -filter \"ref_name == {clock_gates}\"] "
           "-filter \"direction == output\"]\n" if clock_gates else "")
        + "report_power -digits 6\nexit\n")
    out = run(["sta", "-no_splash", "-exit", tcl.name], cwd, what=f"OpenSTA power ({top})")
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    if errors:
        raise NNLUTError(f"OpenSTA could not apply the simulated activities of {top}: {errors[0]}")
    totals = re.findall(r"^Total\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)", out, flags=re.M)
    if len(totals) != 1:
        raise NNLUTError(f"could not read OpenSTA's power for {top}:\n{out[-1200:]}")
    return float(totals[0][3])


def timing_and_power(netlist: Path, top: str, cwd: Path, period_ns: float = 10.0, activity: float = 0.1,
                     clock_gates: str | None = None) -> dict[str, float]:
    """OpenSTA: worst setup slack at ``period_ns`` -> fmax; total power at that clock with the
    given switching activity on every net. ``clock_gates``: the cell type holding the clock
    gates' enables; power is then also reported with those enables held at 0 (no register
    writes: the gated clocks are still), as ``power_w_gates_off``."""
    lib = liberty()
    tcl = cwd / f"{top}_sta.tcl"
    sta_netlist = cwd / f"{top}_sta.v"
    tcl.write_text(
        f"read_liberty {lib}\n"
        f"read_verilog {sta_netlist.name}\n"
        f"link_design {top}\n"
        f"create_clock -name clk -period {period_ns} [get_ports clk]\n"
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]\n"
        "set_output_delay 0 -clock clk [all_outputs]\n"
        "report_checks -path_delay max -digits 4\n"
        f"set_power_activity -global -activity {activity}\n"
        "report_power -digits 6\n"
        + (f"set_case_analysis 0 [get_pins -of_objects [get_cells -filter \"ref_name == {clock_gates}\"] "
           "-filter \"direction == output\"]\nreport_power -digits 6\n" if clock_gates else "")
        + "exit\n"
    )
    out = run(["sta", "-no_splash", "-exit", tcl.name], cwd, what=f"OpenSTA ({top})")
    slacks = [float(v) for v in re.findall(r"(-?[0-9.]+)\s+slack \((?:MET|VIOLATED)\)", out)]
    totals = re.findall(r"^Total\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)", out, flags=re.M)
    if not slacks or len(totals) != (2 if clock_gates else 1):
        raise NNLUTError(f"could not read OpenSTA's timing/power for {top}:\n{out[-1200:]}")
    wns = min(slacks)  # over every path group (register-to-register, I/O, asynchronous reset)
    # OpenSTA reports slack in the liberty's time unit (ns) and power in W
    crit = period_ns - wns
    res = {"critical_path_ns": crit, "fmax_mhz": 1000.0 / crit, "power_w_at_period": float(totals[0][3]),
           "period_ns": period_ns, "activity": activity}
    if clock_gates:
        res["power_w_gates_off"] = float(totals[1][3])
    return res
