"""Self-checking testbenches: they read stimulus and expected outputs from a hex file written
by the Python golden model and print ``N passed, M failed``."""

from __future__ import annotations

from pathlib import Path

CMD_BITS = 176  # kind 4 | addr 8 | data 32 | x 64 | expected 64 | pad 4
KIND_CFG, KIND_VEC = 1, 2


def _hex(v: int, bits: int) -> int:
    return v & ((1 << bits) - 1)


def stream_command(kind: int, *, addr: int = 0, data: int = 0, x: int = 0, expected: int = 0) -> str:
    word = (kind << 172) | (_hex(addr, 8) << 164) | (_hex(data, 32) << 132) | (_hex(x, 64) << 68) | (_hex(expected, 64) << 4)
    return f"{word:044x}"


def _dump(vcd: str | None) -> str:
    """Dump the DUT's own nets (one scope level) to ``vcd``; the testbench prints the activity
    window (``window <start ns> <end ns>``)."""
    return f'initial begin $dumpfile("{vcd}"); $dumpvars(1, tb.dut); end' if vcd else ""


def stream_testbench(dut: str, n_cmds: int, n_vecs: int, *, in_port: str, in_bits: int, out_port: str, out_bits: int,
                     latency: int, has_cfg: bool, hexfile: str, vcd: str | None = None) -> str:
    cfg_decl = "reg cfg_we = 0; reg [7:0] cfg_addr = 0; reg [31:0] cfg_data = 0;" if has_cfg else ""
    cfg_conn = ".cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_data(cfg_data)," if has_cfg else ""
    cfg_drive = "cfg_we = (kind == 1); cfg_addr = cmd[171:164]; cfg_data = cmd[163:132];" if has_cfg else ""
    cfg_idle = "cfg_we = 0;" if has_cfg else ""
    return f"""`timescale 1ns/1ps
module tb;
    reg clk = 0;
    always #50 clk = ~clk;
    reg rst_n = 0;
    {cfg_decl}
    reg in_valid = 0;
    reg [{in_bits - 1}:0] xin = 0;
    wire out_valid;
    wire [{out_bits - 1}:0] yout;
    {dut} dut (.clk(clk), .rst_n(rst_n), {cfg_conn} .in_valid(in_valid), .{in_port}(xin), .out_valid(out_valid), .{out_port}(yout));
    reg [{CMD_BITS - 1}:0] mem [0:{n_cmds - 1}];
    reg [{out_bits - 1}:0] exp_mem [0:{max(n_vecs - 1, 0)}];
    reg [{CMD_BITS - 1}:0] cmd;
    reg [3:0] kind;
    integer i, nin, nout, pass, fail;
    reg [63:0] t_first;
    {_dump(vcd)}
    initial begin
        nin = 0; nout = 0; pass = 0; fail = 0; t_first = 0;
        $readmemh("{hexfile}", mem);
        repeat (3) @(posedge clk);
        rst_n = 1;
        // inputs change 10 ns after the rising edge (the unit's clock gates sample their
        // write enables on the falling edge)
        for (i = 0; i < {n_cmds}; i = i + 1) begin
            @(posedge clk); #10;
            cmd = mem[i];
            kind = cmd[175:172];
            {cfg_drive}
            in_valid = (kind == 2);
            xin = cmd[{68 + in_bits - 1}:68];
            if (kind == 2) begin
                if (nin == 0) t_first = $time;
                exp_mem[nin] = cmd[{4 + out_bits - 1}:4];
                nin = nin + 1;
            end
        end
        @(posedge clk); #10;
        in_valid = 0; {cfg_idle}
        $display("window %0d %0d", t_first, $time);
        repeat ({latency + 3}) @(posedge clk);
        if (nout != nin) begin
            $display("missing outputs: %0d of %0d", nout, nin);
            fail = fail + (nin - nout);
        end
        $display("%0d passed, %0d failed", pass, fail);
        $finish;
    end
    always @(posedge clk) begin
        if (rst_n && out_valid) begin
            if (yout === exp_mem[nout]) pass = pass + 1;
            else begin
                fail = fail + 1;
                if (fail <= 5) $display("mismatch at vector %0d: got %h expected %h", nout, yout, exp_mem[nout]);
            end
            nout = nout + 1;
        end
    end
endmodule
"""


def sequential_testbench(dut: str, n_vecs: int, *, in_port: str, in_bits: int, out_port: str, out_bits: int,
                         hexfile: str, vcd: str | None = None) -> str:
    return f"""`timescale 1ns/1ps
module tb;
    reg clk = 0;
    always #50 clk = ~clk;
    reg rst_n = 0;
    reg start = 0;
    reg [{in_bits - 1}:0] din = 0;
    wire busy, done;
    wire [{out_bits - 1}:0] dout;
    {dut} dut (.clk(clk), .rst_n(rst_n), .start(start), .{in_port}(din), .busy(busy), .done(done), .{out_port}(dout));
    reg [127:0] mem [0:{n_vecs - 1}];
    integer i, pass, fail;
    reg [63:0] cycles, total_cycles, max_cycles, t_first;
    {_dump(vcd)}
    initial begin
        pass = 0; fail = 0; total_cycles = 0; max_cycles = 0;
        $readmemh("{hexfile}", mem);
        repeat (3) @(posedge clk);
        rst_n = 1;
        @(negedge clk);
        t_first = $time;
        for (i = 0; i < {n_vecs}; i = i + 1) begin
            if (i > 0) @(negedge clk);
            din = mem[i][{64 + in_bits - 1}:64];
            start = 1;
            cycles = 0;
            @(negedge clk);
            start = 0;
            cycles = 1;
            while (!done) begin
                @(negedge clk);
                cycles = cycles + 1;
            end
            total_cycles = total_cycles + cycles;
            if (cycles > max_cycles) max_cycles = cycles;
            if (dout === mem[i][{out_bits - 1}:0]) pass = pass + 1;
            else begin
                fail = fail + 1;
                if (fail <= 5) $display("mismatch at vector %0d: input %h got %h expected %h", i, din, dout, mem[i][{out_bits - 1}:0]);
            end
        end
        $display("window %0d %0d", t_first, $time);
        $display("cycles: mean %0d max %0d", total_cycles / {n_vecs}, max_cycles);
        $display("%0d passed, %0d failed", pass, fail);
        $finish;
    end
endmodule
"""


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")
