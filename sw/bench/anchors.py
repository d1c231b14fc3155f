"""Published figures that tritium's measurements are compared against.

One table, used by ``tritium bench`` and ``tritium report``. Each entry keeps
its source; the normalised throughput is derived here, never typed in:
``images/s / (LUT * MHz)``, the measure docs/benchmarks.md compares by.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchor:
    """One published accelerator result on a reference topology."""
    system: str
    network: str
    device: str
    images_per_s: float
    luts: int
    mhz: float
    accuracy_pct: float | None
    source: str

    @property
    def images_per_s_per_lut_mhz(self):
        return self.images_per_s / (self.luts * self.mhz)

    def as_dict(self):
        return {"system": self.system, "network": self.network, "device": self.device,
                "images_per_s": self.images_per_s, "luts": self.luts, "mhz": self.mhz,
                "accuracy_pct": self.accuracy_pct, "source": self.source,
                "images_per_s_per_lut_mhz": self.images_per_s_per_lut_mhz}


ANCHORS = (
    Anchor("FINN (SFC-max)", "sfc", "ZC706 (xc7z045)", 12.3e6, 91_000, 200.0, 95.8,
           "Umuroglu et al., FINN, FPGA 2017, table 2 (about 91k LUT at 200 MHz)"),
    Anchor("BNN-PYNQ (LFC-W1A1)", "lfc", "PYNQ-Z1 (xc7z020)", 356_633, 28_360, 100.0, 98.4,
           "Xilinx BNN-PYNQ repository, README performance table"),
    Anchor("BNN-PYNQ (CNV-W1A1)", "cnv", "PYNQ-Z1 (xc7z020)", 9_150, 26_072, 100.0, 79.2,
           "Xilinx BNN-PYNQ repository, README performance table"),
)

#: Other published points quoted in docs (not throughput on a reference network).
NOTES = (
    "BISMO (bit-serial overlay, Umuroglu et al., FPL 2018): about 0.9 LUT6 per binary op per cycle.",
    "Lattice compact CNN IP on iCE40UP5K: about 2.4k LUT at 31-42 MHz (vendor tools).",
)


def anchors_for(network=None):
    """The anchors of one network (``"sfc"``, ...), or all of them."""
    return [a for a in ANCHORS if network is None or a.network == network]
