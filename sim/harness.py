"""The Verilog test harness around ``tritium_accel`` and its standalone C++ replay.

:func:`accel_harness_verilog` wraps the accelerator in ``tritium_accel_tb``, which runs
one *command* at a time: it reads ``cmd_count`` host writes from the job's write file
(named by the plusarg ``+tritium_writes=FILE``, one write a line: port, bank,
address, data in hex; :data:`WRITE_PORTS`) and presents one a cycle on the
accelerator's write ports; then, with ``cmd_start``, it pulses ``start`` after an idle
cycle and waits for ``done`` or ``error``; then it reads ``cmd_entries`` result-memory
entries from ``cmd_res_base`` on into ``results`` (an address held for
``res_latency`` cycles, then its entry captured: the slices of a chained array deliver
their parts of an entry at different times, so reads are not overlapped) and answers
by setting ``cmd_ack`` to ``cmd_go``. A command starts when ``cmd_go`` differs from ``cmd_ack``. Reset is the
first three clock cycles. With ``TRITIUM_HDL_CLOCK`` defined the clock is generated
in the Verilog (10 ns period); without it ``clk`` is an input.

The cocotb testbench (:mod:`tritium.sim.cocotb_accel`) and the C++ main of
:func:`replay_main_cpp` (the same Verilog without cocotb, the speed ceiling) issue the
same commands.

Verilator reaches only what is public: :func:`public_ports_vlt` marks the ports of a
top module and nothing else (cocotb's runner would mark every signal, which makes the
model several times slower to build and to run).
"""

import re

#: Name of the harness module.
HARNESS_TOP = "tritium_accel_tb"

#: Write-file port codes of the accelerator's write ports.
WRITE_PORTS = {"prog": 0, "wload": 1, "tload": 2, "sload": 3, "act": 4}

#: The accelerator's signals of each write port: (enable, bank, address, data).
_PORT_SIGNALS = {
    "prog": ("prog_we", None, "prog_addr", "prog_data"),
    "wload": ("wload__en", "wload__bank", "wload__addr", "wload__data"),
    "tload": ("tload__en", "tload__bank", "tload__addr", "tload__data"),
    "sload": ("sload__en", None, "sload__addr", "sload__data"),
    "act": ("act_we", None, "act_addr", "act_data"),
}

_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                        r"(?:\[(\d+):(\d+)\]\s*)?([A-Za-z_][A-Za-z0-9_$]*)\s*;", re.MULTILINE)


def verilog_ports(text, module):
    """``{name: (direction, width)}`` of the ports of ``module`` in Verilog ``text``
    (non-ANSI declarations, as Amaranth's back end writes them)."""
    start = re.search(rf"^module {re.escape(module)}\s*\(", text, re.MULTILINE)
    if start is None:
        raise ValueError(f"no module {module} in the Verilog")
    body = text[start.start():text.index("endmodule", start.start())]
    ports = {}
    for direction, hi, lo, name in _PORT_DECL.findall(body):
        ports[name] = (direction, int(hi) - int(lo) + 1 if hi else 1)
    return ports


def public_ports_vlt(module, names):
    """A Verilator control file that makes the ports ``names`` of ``module`` public
    (readable and writable through VPI)."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{module}" -var "{name}"' for name in names]
    return "\n".join(lines) + "\n"


def _harness_ports(res_addr_bits, results_bits):
    """The harness's own ports: ``{name: (direction, width)}``."""
    return {"cmd_go": ("input", 1), "cmd_count": ("input", 32), "cmd_start": ("input", 1),
            "cmd_entries": ("input", 16), "cmd_res_base": ("input", res_addr_bits),
            "cmd_ack": ("output", 1), "job_error": ("output", 1), "done": ("output", 1),
            "error": ("output", 1), "error_code": ("output", 4), "cycles": ("output", 32),
            "results": ("output", results_bits)}


def harness_ports(accel_text, cfg):
    """``{name: (direction, width)}`` of the harness's ports (the clock not among them)."""
    ports = verilog_ports(accel_text, "tritium_accel")
    return _harness_ports(ports["res_addr"][1], cfg.res_depth * ports["res_data"][1])


def _vec(width):
    return f"[{width - 1}:0] " if width > 1 else ""


def accel_harness_verilog(accel_text, cfg):
    """Verilog of ``tritium_accel_tb`` around the accelerator whose Verilog is ``accel_text``
    (``cfg``: its :class:`~tritium.hw.accel_config.AccelConfig`)."""
    ports = verilog_ports(accel_text, "tritium_accel")
    entry_bits = ports["res_data"][1]
    own = harness_ports(accel_text, cfg)
    present = [p for p, sig in _PORT_SIGNALS.items() if sig[0] in ports]
    data_bits = max(ports[_PORT_SIGNALS[p][3]][1] for p in present)
    lat = cfg.res_latency
    out = [f"// {HARNESS_TOP}: see tritium.sim.harness",
           "`timescale 1ns/1ps",
           f"module {HARNESS_TOP}({', '.join(own)}",
           "`ifndef TRITIUM_HDL_CLOCK", "  , clk", "`endif", ");",
           "`ifdef TRITIUM_HDL_CLOCK",
           "  reg clk = 1'b0;",
           "  always #5 clk = ~clk;",
           "`else",
           "  input clk;",
           "`endif"]
    for name, (direction, width) in own.items():
        out.append(f"  {direction} {_vec(width)}{name};")
    out += ["  reg cmd_ack = 1'b0;", "  reg job_error = 1'b0;",
            f"  reg {_vec(own['results'][1])}results = {own['results'][1]}'d0;",
            "  reg [2:0] reset_count = 3'd0;",
            "  wire rst = reset_count != 3'd3;",
            "  always @(posedge clk) if (rst) reset_count <= reset_count + 3'd1;",
            "  reg start = 1'b0;",
            f"  reg {_vec(ports['res_addr'][1])}res_addr = 0;"]
    driven = {"clk", "rst", "start", "res_addr"}
    for p in present:
        for sig in _PORT_SIGNALS[p]:
            if sig is not None:
                out.append(f"  reg {_vec(ports[sig][1])}{sig} = 0;")
                driven.add(sig)
    connections = []
    for name, (direction, width) in ports.items():
        if name in driven or name in ("done", "error", "error_code", "cycles"):
            connections.append(f".{name}({name})")
        elif direction == "input":                      # res_sel: not used by the harness
            connections.append(f".{name}({width}'d0)")
        else:
            out.append(f"  wire {_vec(width)}{name};")
            connections.append(f".{name}({name})")
    out.append(f"  tritium_accel accel({', '.join(connections)});")
    out += ["  integer writes = 0;",
            "  integer scanned;",
            "  reg [8*4096-1:0] writes_path;",
            "  initial if ($value$plusargs(\"tritium_writes=%s\", writes_path))",
            "    writes = $fopen(writes_path, \"r\");",
            "  reg [7:0] w_port;",
            "  reg [31:0] w_bank, w_addr;",
            f"  reg {_vec(data_bits)}w_data;",
            "  localparam IDLE = 3'd0, PLAY = 3'd1, GAP = 3'd2, STARTED = 3'd3, RUN = 3'd4, "
            "READ = 3'd5;",
            "  reg [2:0] state = IDLE;",
            "  reg [31:0] left = 32'd0;",
            "  reg [31:0] issued = 32'd0, next_entry;",
            "  reg [15:0] hold = 16'd0;",
            "  always @(posedge clk) begin"]
    for p in present:
        out.append(f"    {_PORT_SIGNALS[p][0]} <= 1'b0;")
    out += ["    start <= 1'b0;",
            "    case (state)",
            "      IDLE: if (!rst && cmd_go != cmd_ack) begin",
            "        left <= cmd_count;",
            "        state <= PLAY;",
            "      end",
            "      PLAY: if (left == 32'd0) begin",
            "        issued <= 32'd0;",
            "        hold <= 16'd0;",
            "        state <= cmd_start ? GAP : READ;",
            "      end else begin",
            "        scanned = writes ? $fscanf(writes, \"%h %h %h %h\\n\", w_port, w_bank, "
            "w_addr, w_data) : 0;",
            "        if (scanned != 4) job_error <= 1'b1;",
            "        case (w_port)"]
    for p in present:
        en, bank, addr, dat = _PORT_SIGNALS[p]
        body = [f"{en} <= 1'b1;", f"{addr} <= w_addr[{ports[addr][1] - 1}:0];",
                f"{dat} <= w_data[{ports[dat][1] - 1}:0];"]
        if bank is not None:
            body.append(f"{bank} <= w_bank[{ports[bank][1] - 1}:0];")
        out.append(f"          8'd{WRITE_PORTS[p]}: begin {' '.join(body)} end")
    out += ["          default: job_error <= 1'b1;",
            "        endcase",
            "        left <= left - 32'd1;",
            "      end",
            "      GAP: begin start <= 1'b1; state <= STARTED; end",
            "      STARTED: state <= RUN;",
            "      RUN: if (done || error) state <= READ;",
            "      READ: if (hold > 16'd1) hold <= hold - 16'd1;",
            "      else begin",
            f"        if (hold == 16'd1) results[issued * {entry_bits} +: {entry_bits}] <= res_data;",
            "        next_entry = issued + {31'd0, hold == 16'd1};",
            "        issued <= next_entry;",
            "        if (next_entry == {16'd0, cmd_entries}) begin",
            "          cmd_ack <= cmd_go;",
            "          state <= IDLE;",
            "        end else begin",
            f"          res_addr <= cmd_res_base + next_entry[{ports['res_addr'][1] - 1}:0];",
            f"          hold <= 16'd{lat + 1};",
            "        end",
            "      end",
            "      default: state <= IDLE;",
            "    endcase",
            "  end",
            "endmodule", ""]
    return "\n".join(out)


def replay_main_cpp(results_bits):
    """C++ main of the standalone replay: the harness without cocotb, its clock driven by
    two ``eval`` calls a cycle. ``argv[1]``: the command file (one command a line:
    count, start, entries, result base); the write file comes as for the testbench
    (``+tritium_writes=FILE``). Prints one JSON object: the cycles of each started
    command, the results of each reading command (hex), and the seconds of start-up
    (model construction, reading the commands) and of the run."""
    if results_bits > 64:
        hex_results = (f"for (int i = {(results_bits + 31) // 32 - 1}; i >= 0; --i) {{\n"
                       "        snprintf(buf, sizeof buf, \"%08x\", (unsigned)top->results[i]);\n"
                       "        hex += buf;\n      }")
    else:
        hex_results = ("snprintf(buf, sizeof buf, \"%llx\", (unsigned long long)top->results);\n"
                       "      hex += buf;")
    return f"""// Standalone replay of a job on {HARNESS_TOP} (see tritium.sim.harness).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>
#include "Vtop.h"
#include "verilated.h"

namespace {{
struct Command {{ unsigned long count, start, entries, base; }};
double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {{
  return std::chrono::duration<double>(b - a).count();
}}
}}

int main(int argc, char** argv) {{
  const auto t0 = std::chrono::steady_clock::now();
  auto ctx = std::make_unique<VerilatedContext>();
  ctx->commandArgs(argc, argv);
  auto top = std::make_unique<Vtop>(ctx.get());
  std::vector<Command> commands;
  FILE* f = argc > 1 ? fopen(argv[1], "r") : nullptr;
  if (!f) {{ fprintf(stderr, "usage: %s COMMANDS +tritium_writes=FILE\\n", argv[0]); return 2; }}
  Command c;
  while (fscanf(f, "%lu %lu %lu %lu", &c.count, &c.start, &c.entries, &c.base) == 4)
    commands.push_back(c);
  fclose(f);
  top->clk = 0;
  top->eval();
  const auto t1 = std::chrono::steady_clock::now();
  unsigned go = 0;
  std::vector<unsigned long> cycles;
  std::vector<std::string> results;
  char buf[32];
  for (const Command& k : commands) {{
    top->cmd_count = k.count;
    top->cmd_start = k.start;
    top->cmd_entries = k.entries;
    top->cmd_res_base = k.base;
    go ^= 1;
    top->cmd_go = go;
    do {{
      top->clk = 1; top->eval();
      top->clk = 0; top->eval();
    }} while (top->cmd_ack != go);
    if (top->job_error || top->error) {{
      fprintf(stderr, "replay: %s\\n", top->job_error ? "the write file ended early" : "accelerator error");
      return 1;
    }}
    if (k.start) cycles.push_back(top->cycles);
    if (k.entries) {{
      std::string hex;
      {hex_results}
      results.push_back(hex);
    }}
  }}
  const auto t2 = std::chrono::steady_clock::now();
  top->final();
  printf("{{\\"cycles\\": [");
  for (size_t i = 0; i < cycles.size(); ++i) printf("%s%lu", i ? ", " : "", cycles[i]);
  printf("], \\"results\\": [");
  for (size_t i = 0; i < results.size(); ++i) printf("%s\\"%s\\"", i ? ", " : "", results[i].c_str());
  printf("], \\"startup_s\\": %.6f, \\"run_s\\": %.6f}}\\n", seconds(t0, t1), seconds(t1, t2));
  return 0;
}}
"""


_MEMORY_INIT = re.compile(
    r"^  initial begin\n((?:    ([A-Za-z_][A-Za-z0-9_$]*)\[\d+\] = \d+'h0+;\n)+)  end\n", re.M)


def loop_zero_memory_inits(text):
    """``text`` with every memory initialiser that sets words 0..N-1 of one memory to
    zero, one statement a word, written as one loop over the words.

    Yosys writes a memory's power-up contents one statement a word; for the activation
    buffers and weight banks (zeros, thousands of words) that is most of the C++ a
    simulator compiles. The loop assigns the same values: the memories start as the
    generated Verilog says. Initialisers with a non-zero word, or that are not one
    memory's words 0..N-1 in order, are left as they are.
    """
    def as_loop(match):
        body, name = match.group(1), match.group(2)
        lines = body.splitlines()
        expected = [f"    {name}[{i}] = " for i in range(len(lines))]
        if any(not line.startswith(prefix) for line, prefix in zip(lines, expected)):
            return match.group(0)
        width = lines[0].rsplit(" = ", 1)[1].split("'", 1)[0]
        index = f"{name}__word"
        return (f"  integer {index};\n  initial begin\n"
                f"    for ({index} = 0; {index} < {len(lines)}; {index} = {index} + 1)\n"
                f"      {name}[{index}] = {width}'h0;\n  end\n")

    return _MEMORY_INIT.sub(as_loop, text)
