"""Per-net switching activity from a VCD: toggles per clock period and time at 1 over a
window, against counts made by hand; the OpenSTA commands it becomes."""

from __future__ import annotations

import pytest

from nnlut.hw import missing_tools
from nnlut.hw._activity import activity_tcl, vcd_activity

# a 1 ns timescale written in ps, one scalar and one 3-bit vector inside tb.dut, a net of
# another scope that must be ignored
VCD = """$timescale 1ps $end
$scope module tb $end
$var reg 1 ! clk $end
$scope module dut $end
$var wire 1 # a $end
$var wire 3 $ v [2:0] $end
$scope module cell $end
$var wire 1 % inner $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0#
b000 $
0%
#100000
1#
b101 $
1%
#200000
0#
#300000
1#
b1 $
#400000
"""


def test_vcd_activity_counts_toggles_and_duty(tmp_path):
    p = tmp_path / "a.vcd"
    p.write_text(VCD)
    act = vcd_activity(p, "tb.dut", 0.0, 400.0, 100.0)  # four 100 ns clock periods
    assert set(act) == {"a", "v_0", "v_1", "v_2"}  # the nested cell's net is not the DUT's
    # a: 0 -> 1 -> 0 -> 1: three toggles in four periods, high during [100, 200) and [300, 400)
    assert act["a"] == pytest.approx((3 / 4, 2 / 4))
    # v = 000 -> 101 -> 001 (b1 left-extends with 0): bit 0 toggles once, bit 2 twice, bit 1 never
    assert act["v_0"] == pytest.approx((1 / 4, 3 / 4))
    assert act["v_2"] == pytest.approx((2 / 4, 2 / 4))
    assert act["v_1"] == pytest.approx((0.0, 0.0))
    # a window excludes changes outside it
    late = vcd_activity(p, "tb.dut", 150.0, 400.0, 100.0)
    assert late["a"] == pytest.approx((2 * 100 / 250, 150 / 250))


def test_activity_tcl_sets_every_known_net():
    tcl, hit = activity_tcl({"a": (0.5, 0.25), "x_0": (1.0, 0.5), "gone": (1.0, 1.0)}, {"a", "x_0", "b"}, {"x_0"})
    assert hit == 2
    assert "nnlut_net_activity {a} 0.5 0.25" in tcl
    assert "nnlut_port_activity {x_0} 1 0.5" in tcl and "nnlut_net_activity {x_0} 1 0.5" in tcl
    assert "{b}" not in tcl and "gone" not in tcl


@pytest.mark.hw
@pytest.mark.skipif(bool(missing_tools()), reason="hardware tools missing")
def test_uniform_simulated_activity_matches_the_vectorless_estimate(tmp_path):
    # the same activity on every net through both paths gives about the same power, also in
    # logic fed straight by the input ports (a 1-cycle unit: only its output is registered)
    from nnlut.hw import _rtl_nnlut as rnn
    from nnlut.hw import _tools as tools
    from nnlut.hw._flow import paper_tables

    top = "gelu_1c"
    (tmp_path / f"{top}.v").write_text(rnn.nnlut_rom_verilog(paper_tables(8)["gelu"], top, stages=1))
    _, netlist, _ = tools.synthesize(tmp_path / f"{top}.v", top, tmp_path)
    vectorless = tools.timing_and_power(netlist, top, tmp_path, 10.0, 0.1)["power_w_at_period"]
    nets, ports = tools.sta_nets(top, tmp_path)
    tcl, hit = activity_tcl({n: (0.1, 0.5) for n in nets}, nets, ports)
    assert hit == len(nets)
    simulated = tools.simulated_power(top, tmp_path, 10.0, tcl)
    assert simulated == pytest.approx(vectorless, rel=0.25)
