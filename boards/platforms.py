"""The supported boards: platform, default accelerator, clocks, programmer name.

Each :class:`Board` names an amaranth-boards platform, the accelerator
preset it builds by default (:data:`tritium.hw.presets.PRESETS`), its
oscillator and the target clock of the accelerator (a PLL makes it), the
FPGA family of the bitstream tools, and the board and cable names in
openFPGALoader's own vocabulary (``openFPGALoader --list-boards``,
``--list-cables``).
"""

from dataclasses import dataclass

from ..hw.errors import TritiumError


@dataclass(frozen=True)
class Board:
    """A supported board.

    Parameters
    ----------
    name : str
        ``tritium build --board`` name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    preset : str
        Default accelerator configuration (``tritium compile --hw`` name).
    family : str
        ``"ice40"`` or ``"ecp5"``: which bitstream tools apply.
    clk_in_mhz : float
        Oscillator frequency.
    target_mhz : float
        Lowest acceptable accelerator clock (the PLL gives the nearest at or above).
    loader_board : str
        ``openFPGALoader -b`` name: an entry of ``openFPGALoader --list-boards``.
    loader_cable : str
        The USB interface of the board's programmer: the cable that
        ``openFPGALoader --list-boards`` gives ``loader_board`` (an entry of
        ``--list-cables``). ``-b`` selects it; it is named here so that a test can
        check the board entry against the board's hardware.
    baud : int
        UART baud rate.
    seed_tries : int
        nextpnr seeds ``tritium build`` tries, from ``--seed`` on, until one meets
        timing (placement noise moves Fmax by several MHz on the same netlist).
    cells, block_rams, sprams : int
        The FPGA's logic cells (nextpnr's ``ICESTORM_LC`` / ``TRELLIS_COMB``), block
        RAMs (``ICESTORM_RAM`` / ``DP16KD``) and SPRAMs.
    yosys_seconds, nextpnr_seconds : float
        Measured synthesis and place-and-route time of the board's preset, one seed
        (docs/boards.md): the base of the build-time estimate.
    """

    name: str
    platform: str
    preset: str
    family: str
    clk_in_mhz: float
    target_mhz: float
    loader_board: str
    loader_cable: str
    cells: int
    block_rams: int
    sprams: int
    yosys_seconds: float
    nextpnr_seconds: float
    baud: int = 115200
    seed_tries: int = 1

    def make_platform(self):
        import importlib
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS = {
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform",
                        preset="icebreaker", family="ice40", clk_in_mhz=12, target_mhz=40,
                        loader_board="ice40_generic", loader_cable="ft2232",
                        cells=5280, block_rams=30, sprams=4, yosys_seconds=35, nextpnr_seconds=65,
                        seed_tries=3),
    # Four seeds: the ULX3S preset's Fmax moves by up to 8 MHz around the 100 MHz clock from
    # seed to seed (docs/timing.md), and a place and route takes about 10 minutes.
    "ulx3s": Board("ulx3s", "amaranth_boards.ulx3s:ULX3S_85F_Platform",
                   preset="ulx3s", family="ecp5", clk_in_mhz=25, target_mhz=100,
                   loader_board="ulx3s", loader_cable="ft231X",
                   cells=83640, block_rams=208, sprams=0, yosys_seconds=83, nextpnr_seconds=550,
                   seed_tries=4),
}


def get_board(name):
    """The :class:`Board` called ``name`` (one-line error naming the known boards)."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TritiumError(f"unknown board {name!r} (known: {', '.join(BOARDS)})") from None
