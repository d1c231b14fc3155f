"""The generated core: PE array followed by the multi-threshold unit, and its Verilog."""

from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from .config import ConfigError, HwConfig
from .layouts import input_layout, output_layout, threshold_load_signature, weight_load_signature
from .pe import PEArray
from .threshold import ThresholdUnit
from .toolchain import setup_yowasp_env

#: Name of the top-level Verilog module.
TOP_NAME = "tritium_core"


class Core(wiring.Component):
    """PE array + threshold unit: the datapath that a controller will drive.

    Parameters
    ----------
    cfg : HwConfig

    Members
    -------
    inp : In(stream.Signature(input_layout(cfg)))
        Broadcast input words with their commands (see :mod:`tritium.hw.layouts`).
    out : Out(stream.Signature(output_layout(cfg)))
        One beat per command with ``last``: results ``acc`` (D) and activations ``act``.
    wload : In(weight_load_signature(cfg))
        Weight-bank write port.
    tload : In(threshold_load_signature(cfg))
        Threshold-memory write port.

    Parameters
    ----------
    init : MemoryInit or None
        Initial weight and threshold words (``weights_p{k}``, ``thresholds_p{k}``).
    """

    def __init__(self, cfg, *, init=None):
        if not isinstance(cfg, HwConfig):
            raise TypeError("Core needs a HwConfig")
        if cfg.chain:
            self._MustUse__silence = True     # refused: never elaborated, no warning
            raise ConfigError("a chained array (chain = true) is built only inside the "
                              "accelerator (tritium compile / build), not as a stand-alone core")
        self.cfg, self.init = cfg, init
        super().__init__({
            "inp": In(stream.Signature(input_layout(cfg))),
            "out": Out(stream.Signature(output_layout(cfg))),
            "wload": In(weight_load_signature(cfg)),
            "tload": In(threshold_load_signature(cfg)),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.submodules.array = array = PEArray(self.cfg, init=self.init)
        m.submodules.threshold = thr = ThresholdUnit(self.cfg, init=self.init)
        connect(m, wiring.flipped(self.inp), array.i)
        connect(m, array.o, thr.i)
        connect(m, thr.o, wiring.flipped(self.out))
        connect(m, wiring.flipped(self.wload), array.wload)
        connect(m, wiring.flipped(self.tload), thr.tload)
        return m


#: ``verilator --lint-only -Wall`` waivers, each for a pattern of Amaranth's
#: Verilog backend rather than of the design (simulation checks the logic):
LINT_WAIVERS = {
    "UNUSEDSIGNAL": "the backend keeps a named wire for every port, field and "
                    "intermediate value, also where only some bits are read "
                    "(e.g. command fields that a core without bit-serial mode ignores)",
    "PROCASSINIT": "registers are declared with their reset value as initialiser "
                   "(FPGA power-up value) and assigned in an always block",
    "DECLFILENAME": "one file holds the whole hierarchy; submodules are named 'top.sub'",
    "WIDTHEXPAND": "operands are extended to the result width exactly as Amaranth's "
                   "arithmetic rules define (signed accumulator plus a narrower addend, "
                   "comparisons of a bank index with a constant)",
    "WIDTHTRUNC": "the backend writes a comparison with zero as '!bus' (logical not of a vector)",
}


def lint_header():
    lines = ["// Lint waivers for 'verilator --lint-only -Wall', one per pattern of the Amaranth backend:"]
    for code, why in LINT_WAIVERS.items():
        lines.append(f"/* verilator lint_off {code} */  // {why}")
    return "\n".join(lines) + "\n"


def to_verilog(component, name=TOP_NAME):
    """Plain synthesizable Verilog of a component (inferred memories, no primitives)."""
    setup_yowasp_env()
    return lint_header() + verilog.convert(component, name=name, emit_src=False)


def core_verilog(cfg):
    return to_verilog(Core(cfg))
