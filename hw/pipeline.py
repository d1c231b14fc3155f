"""Pipeline registers."""

from amaranth.hdl import Signal


def delayed(m, value, *stages, reset_less=False):
    """``value`` through one register per name in ``stages`` (names ``<value>_<stage>``)."""
    base = getattr(value, "name", "stage")
    for stage in stages:
        reg = Signal.like(value, name=f"{base}_{stage}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value
