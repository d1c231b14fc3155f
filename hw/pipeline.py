"""Pipeline registers: the one set of register and delay helpers of the gateware."""

from amaranth.hdl import Signal


def register(m, value, name, *, en=None, reset_less=False, attrs=None):
    """A register ``name`` of ``value`` (shaped as :meth:`Signal.like`), loaded every cycle
    or, with ``en``, where ``en`` is high. ``attrs``: its attributes (default: those of
    ``value`` where it is a signal)."""
    reg = Signal.like(value, name=name, reset_less=reset_less,
                      **({} if attrs is None else {"attrs": attrs}))
    if en is None:
        m.d.sync += reg.eq(value)
    else:
        with m.If(en):
            m.d.sync += reg.eq(value)
    return reg


def delay(m, value, cycles, name, **kwargs):
    """``value`` through ``cycles`` registers ``<name>_d0``, ``<name>_d1``, ... (keyword
    arguments as :func:`register`)."""
    for k in range(cycles):
        value = register(m, value, f"{name}_d{k}", **kwargs)
    return value


def delayed(m, value, *stages, reset_less=False):
    """``value`` through one register per name in ``stages`` (names ``<value>_<stage>``)."""
    base = getattr(value, "name", "stage")
    for stage in stages:
        value = register(m, value, f"{base}_{stage}", reset_less=reset_less)
    return value
