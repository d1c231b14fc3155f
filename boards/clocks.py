"""PLL settings of the boards' FPGAs, computed like ``icepll`` and ``ecppll`` do.

Both functions search the divider space for the lowest output frequency at or
above the one asked for (a board's target clock is a lower bound), under the
data-sheet limits of the PLL's phase detector and VCO.

iCE40 (``SB_PLL40_PAD`` / ``SB_PLL40_CORE``, simple feedback)::

    f_pfd = f_in / (DIVR + 1)             10 .. 133 MHz
    f_vco = f_pfd * (DIVF + 1)           533 .. 1066 MHz
    f_out = f_vco / 2**DIVQ              16 .. 275 MHz,  DIVQ 1 .. 6

ECP5 (``EHXPLLL``, feedback from CLKOP; the VCO nearest 600 MHz)::

    f_pfd = f_in / CLKI_DIV               >= 3.125 MHz,  CLKI_DIV 1 .. 128
    f_out = f_pfd * CLKFB_DIV              CLKFB_DIV 1 .. 80
    f_vco = f_out * CLKOP_DIV            400 .. 800 MHz, CLKOP_DIV 1 .. 128
"""

from dataclasses import dataclass

from ..hw.errors import TritiumError


@dataclass(frozen=True)
class ICE40PLL:
    """``SB_PLL40_*`` parameters (simple feedback) and the frequencies they give (MHz)."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in: float
    f_out: float
    f_vco: float


@dataclass(frozen=True)
class ECP5PLL:
    """``EHXPLLL`` parameters (CLKOP feedback) and the frequencies they give (MHz)."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in: float
    f_out: float
    f_vco: float


def _ice40_filter_range(f_pfd):
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if f_pfd < limit:
            return value
    return 6


def ice40_pll(f_in_mhz, f_min_mhz):
    """The iCE40 PLL setting with the lowest output frequency >= ``f_min_mhz``."""
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if 16 <= f_out <= 275 and f_out >= f_min_mhz - 1e-9:
                    if best is None or f_out < best.f_out - 1e-9:
                        best = ICE40PLL(divr, divf, divq, _ice40_filter_range(f_pfd),
                                        f_in_mhz, f_out, f_vco)
    if best is None:
        raise TritiumError(f"no iCE40 PLL setting gives >= {f_min_mhz} MHz from {f_in_mhz} MHz")
    return best


def ecp5_pll(f_in_mhz, f_min_mhz):
    """The ECP5 PLL setting with the lowest output frequency >= ``f_min_mhz``."""
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if f_pfd < 3.125:
            break
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            if f_out < f_min_mhz - 1e-9:
                continue
            # The VCO nearest the middle of its range (as ecppll chooses).
            divs = [d for d in range(1, 129) if 400 <= f_out * d <= 800]
            if divs:
                d = min(divs, key=lambda d: abs(f_out * d - 600))
                if best is None or f_out < best.f_out - 1e-9:
                    best = ECP5PLL(clki_div, clkfb_div, d, f_in_mhz, f_out, f_out * d)
            break       # larger feedback dividers only raise f_out
    if best is None:
        raise TritiumError(f"no ECP5 PLL setting gives >= {f_min_mhz} MHz from {f_in_mhz} MHz")
    return best
