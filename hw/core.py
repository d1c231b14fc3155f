"""The generated core: PE array followed by the multi-threshold unit, and its Verilog."""

from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from .config import HwConfig
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
    """

    def __init__(self, cfg):
        if not isinstance(cfg, HwConfig):
            raise TypeError("Core needs a HwConfig")
        self.cfg = cfg
        super().__init__({
            "inp": In(stream.Signature(input_layout(cfg))),
            "out": Out(stream.Signature(output_layout(cfg))),
            "wload": In(weight_load_signature(cfg)),
            "tload": In(threshold_load_signature(cfg)),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.submodules.array = array = PEArray(self.cfg)
        m.submodules.threshold = thr = ThresholdUnit(self.cfg)
        connect(m, wiring.flipped(self.inp), array.i)
        connect(m, array.o, thr.i)
        connect(m, thr.o, wiring.flipped(self.out))
        connect(m, wiring.flipped(self.wload), array.wload)
        connect(m, wiring.flipped(self.tload), thr.tload)
        return m


def to_verilog(component, name=TOP_NAME):
    """Plain synthesizable Verilog of a component (inferred memories, no primitives)."""
    setup_yowasp_env()
    return verilog.convert(component, name=name, emit_src=False)


def core_verilog(cfg):
    return to_verilog(Core(cfg))
