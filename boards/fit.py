"""Before the long work: whether a design fits a board, and how long its build takes.

Both are estimates (:func:`tritium.hw.estimate.design_estimate`: a formula
calibrated on the presets' builds; build time scaled from the measured time of
the board's preset by the estimated logic cells). ``tritium build`` prints them
and refuses, with one line, a design whose estimate clearly exceeds the device
(more block RAMs or SPRAMs than it has, or more than :data:`CLEARLY_OVER` times
its logic cells); ``--no-fit-check`` builds anyway. ``tritium generate`` warns
when no supported board holds the design and names the closest.
"""

from ..hw.errors import TritiumError
from ..hw.estimate import design_estimate
from ..sw.util.toolrun import elapsed_text
from .platforms import BOARDS

#: Logic cells over the device's times this refuse a build (the cell formula's error on the
#: presets is under 1 %; the margin leaves room for configurations far from them).
CLEARLY_OVER = 1.25


def _accel(cfg):
    """An accelerator configuration for ``cfg`` (a core alone gets the default memories)."""
    from ..hw.accel_config import AccelConfig
    return cfg if isinstance(cfg, AccelConfig) else AccelConfig(core=cfg)


def board_fit(board, cfg):
    """The estimate of ``cfg`` on ``board`` beside the device: ``{"cells", "block_rams",
    "sprams"}`` (each ``{"estimate", "available"}``), ``"use"`` (the largest fraction of
    a resource), ``"fits"`` and ``"clearly_over"`` (the resources past the refusal line)."""
    est = design_estimate(_accel(cfg), board.family)
    out = {k: {"estimate": est[k], "available": getattr(board, k)}
           for k in ("cells", "block_rams", "sprams")}
    use = max(v["estimate"] / v["available"] if v["available"] else (float("inf") if v["estimate"] else 0)
              for v in out.values())
    over = [k for k, v in out.items()
            if v["estimate"] > v["available"] * (CLEARLY_OVER if k == "cells" else 1)]
    out.update(use=use, fits=use <= 1, clearly_over=over)
    return out


def describe_fit(board, fit):
    """``"about 4,076 of 5,280 logic cells (77 %), 27 of 30 block RAMs, 4 of 4 SPRAMs"``."""
    parts = []
    for key, what in (("cells", "logic cells"), ("block_rams", "block RAMs"), ("sprams", "SPRAMs")):
        v = fit[key]
        if v["available"] or v["estimate"]:
            pct = f" ({100 * v['estimate'] / v['available']:.0f} %)" if v["available"] else ""
            parts.append(f"{v['estimate']:,} of {v['available']:,} {what}{pct}")
    return "about " + ", ".join(parts)


def build_seconds(board, cfg):
    """Estimated seconds of one seed's hardware build (yosys + nextpnr): the board preset's
    measured time scaled by the estimated logic cells."""
    from ..hw.presets import PRESETS
    ref = design_estimate(PRESETS[board.preset], board.family)["cells"]
    cells = design_estimate(_accel(cfg), board.family)["cells"]
    return (board.yosys_seconds + board.nextpnr_seconds) * cells / ref


def check_board_fit(board, cfg, seeds, log, force=False):
    """Log the estimate of a board build (resources, time for ``seeds`` seeds not yet
    built) and refuse one that clearly does not fit (unless ``force``); returns the fit."""
    fit = board_fit(board, cfg)
    verdict = "fits" if fit["fits"] else "does NOT fit"
    log(f"estimate for the {board.name}: {describe_fit(board, fit)}: {verdict}")
    if fit["clearly_over"] and not force:
        names = {"cells": "logic cells", "block_rams": "block RAMs", "sprams": "SPRAMs"}
        raise TritiumError(
            f"the design does not fit the {board.name}: estimated "
            + ", ".join(f"{fit[k]['estimate']:,} {names[k]} of {fit[k]['available']:,}"
                        for k in fit["clearly_over"])
            + " (an estimate; --no-fit-check builds anyway)")
    if seeds:
        per = build_seconds(board, cfg)
        more = (f", up to {seeds} seeds ({elapsed_text(per * seeds)}) if the first misses timing"
                if seeds > 1 else "")
        log(f"estimate: the hardware build takes about {elapsed_text(per)} per seed{more} "
            f"(scaled from the {board.preset} preset's measured yosys + nextpnr time)")
    return fit


def no_board_warning(cfg):
    """A one-line warning when no supported board holds ``cfg`` (naming the closest and
    what it lacks), else None."""
    fits = {name: board_fit(board, cfg) for name, board in BOARDS.items()}
    if any(f["fits"] for f in fits.values()):
        return None
    name = min(fits, key=lambda n: fits[n]["use"])
    return (f"no supported board can hold this design (estimate); the closest is the {name}: "
            f"{describe_fit(BOARDS[name], fits[name])}")
