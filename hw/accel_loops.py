"""Loop counters of the accelerator's loop nests, and the decoders and products of its
address arithmetic (hw/accel_blocks.py)."""

from amaranth.hdl import Cat, Const, Mux, Signal


def bound_registers(m, bound):
    """``(bound - 2, bound == 1)`` of a loop bound, registered (for :class:`LoopDigit`)."""
    m2, one = Signal.like(bound, name=f"{bound.name}_m2"), Signal(name=f"{bound.name}_is1")
    m.d.sync += [m2.eq(bound - 2), one.eq(bound == 1)]
    return m2, one


class LoopDigit:
    """A loop counter over ``range(bound)`` with its last-value flag in a register.

    ``last`` equals ``value == bound - 1`` at every cycle without comparing
    through a subtraction on the odometer's carry path: a step from ``value``
    makes the next value last when ``value == bound - 2``, a wrap when
    ``bound == 1``. ``start``, ``step`` and ``wrap`` are the sync statements of
    the counter and its flag (``start``: the flag of value 0, from ``bound``
    itself; ``registers``: :func:`bound_registers` of ``bound``).
    """

    def __init__(self, value, bound, registers, *, top=None):
        m2, one = registers
        self.last = Signal(name=f"{value.name}_last")
        self.first, self.one = bound == 1, one
        self.start = self.last.eq(self.first)
        if top is None:
            self.stepped_last = value == m2
            self.step = [value.eq(value + 1), self.last.eq(self.stepped_last)]
            self.wrap = [value.eq(0), self.last.eq(one)]
        else:               # counting down from top = bound - 1 (registered) to 0
            self.stepped_last = value == 1
            self.step = [value.eq(value - 1), self.last.eq(self.stepped_last)]
            self.wrap = [value.eq(top), self.last.eq(one)]

    def next_last(self, carry):
        """The flag's next value when the carry into this digit is ``carry``."""
        return Mux(carry, Mux(self.last, self.one, self.stepped_last), self.last)


class DiagonalDigit:
    """The (weight plane, bit plane) terms of one accumulation as one loop digit beside
    :class:`LoopDigit` (same members), in diagonal order
    (:func:`tritium.hw.contract.diagonal_terms`).

    ``wp`` counts weight planes from the top one (0), ``plane`` bit planes. A diagonal
    starts at (``wp0``, ``b0``) and steps ``wp + 1, plane + 1`` until its *edge* (``wp`` at
    the bottom weight plane or ``plane`` at the top bit plane); the next one starts at
    (0, ``b0`` - 1), or at (``wp0`` + 1, 0) once ``b0`` is 0. The accumulation's last term
    is (``w_planes`` - 1, 0). The flags are registers: ``edge``, ``last``, ``diag_first``
    (the term starts its diagonal) and ``shl`` (it starts a diagonal but the first).
    ``w_regs``, ``b_regs``: :func:`bound_registers` of the weight and bit planes; ``top``
    the top bit plane (a register), ``start_top`` its value from the configuration;
    ``first``: one term only, from the configuration.
    """

    def __init__(self, wp, plane, w_regs, b_regs, top, start_top, first):
        (w_m2, w_one), (b_m2, b_one) = w_regs, b_regs
        wp0, b0 = Signal.like(wp, name="w_plane0"), Signal.like(plane, name="plane0")
        self.wp0, self.b0 = wp0, b0
        self.edge, self.last, self.diag_first, self.shl = (
            Signal(name=f"term_{n}") for n in ("edge", "last", "diag_first", "shl"))
        self.first, self.one = first, w_one & b_one
        self.b0_zero = b0 == 0
        next_wp0, next_b0 = Mux(self.b0_zero, wp0 + 1, 0), Mux(self.b0_zero, 0, b0 - 1)
        # The next diagonal's start term ends it when a plane count is 1 (or wp0 + 1 is the
        # bottom plane); it is the last term when it is (w_planes - 1, 0).
        next_edge = Mux(self.b0_zero, (wp0 == w_m2) | b_one, w_one)
        next_last = Mux(self.b0_zero, wp0 == w_m2, w_one & (b0 == 1))
        along_edge = (wp == w_m2) | (plane == b_m2)
        self.stepped_last = self.edge & next_last
        edge = self.edge
        self.step = [wp.eq(Mux(edge, next_wp0, wp + 1)), plane.eq(Mux(edge, next_b0, plane + 1)),
                     wp0.eq(Mux(edge, next_wp0, wp0)), b0.eq(Mux(edge, next_b0, b0)),
                     self.edge.eq(Mux(edge, next_edge, along_edge)),
                     self.diag_first.eq(edge), self.shl.eq(edge), self.last.eq(self.stepped_last)]
        self.wrap = self._begin(wp, plane, top, self.one)
        self.start = self._begin(wp, plane, start_top, first)

    def _begin(self, wp, plane, top, last):
        """The first term (0, top): a diagonal of its own."""
        return [wp.eq(0), plane.eq(top), self.wp0.eq(0), self.b0.eq(top), self.edge.eq(1),
                self.diag_first.eq(1), self.shl.eq(0), self.last.eq(last)]

    def next_last(self, carry):
        """The flag's next value when the carry into this digit is ``carry``."""
        return Mux(carry, Mux(self.last, self.one, self.stepped_last), self.last)

    def word_wrap(self, j, base_next):
        """Statements at a term's last word for the row's word index ``j`` (plane base +
        word): the next term of a diagonal is the next weight plane (its words follow);
        a new diagonal starts at plane 0 (``b0`` > 0) or at plane ``wp0`` + 1, whose base
        ``base_next`` holds from the end of the diagonal's first term."""
        on = ~self.edge | (self.b0_zero & self.diag_first)
        return [j.eq(Mux(self.last, 0, Mux(on, j + 1, Mux(self.b0_zero, base_next, 0)))),
                base_next.eq(Mux(self.diag_first, j + 1, base_next))]


def product(m, a, b):
    """``a * b`` at its full width on a kept wire: synthesis maps it to a DSP block (yosys
    maps only products of at least 11 bits to iCE40 SB_MAC16s) rather than LUTs, although
    only the low bits are used (an address modulo a memory's depth)."""
    prod = Signal(len(a) + len(b), attrs={"keep": 1})
    m.d.comb += prod.eq(a * b)
    return prod


def bits(n):
    """Bits of an unsigned ``n``."""
    return max(1, int(n).bit_length())


def decodes(value, n):
    """``(one_hot, thermometer)`` of ``value``, ``n`` bits each: bit ``i`` is ``value == i``,
    ``value > i``; decoded from the value's upper and lower bits (no comparator carry
    chain per bit)."""
    lobits = min(3, len(value))
    lo, hi = value[:lobits], value[lobits:]
    lo_vals, hi_vals = 1 << lobits, 1 << len(hi)
    eq_hi = [hi == h for h in range(hi_vals)]
    eq_lo = [lo == v for v in range(lo_vals)]
    gt_hi = [Cat(*eq_hi[h + 1:]).any() for h in range(hi_vals)]
    gt_lo = [Cat(*eq_lo[v + 1:]).any() for v in range(lo_vals)]
    one_hot, thermometer = [], []
    for i in range(n):
        h, v = i >> lobits, i & (lo_vals - 1)
        one_hot.append(Const(0) if h >= hi_vals else eq_hi[h] & eq_lo[v])
        thermometer.append(Const(0) if h >= hi_vals else gt_hi[h] | (eq_hi[h] & gt_lo[v]))
    return Cat(*one_hot), Cat(*thermometer)


def thermometer(value, n):
    """``n`` bits, bit ``i`` = ``value > i`` (see :func:`decodes`)."""
    return decodes(value, n)[1]


class Carries:
    """Registered carries of a nest of :class:`LoopDigit` (innermost first) that steps
    when ``carry_in`` (a register) is high.

    ``pre[k]``, every digit inside digit ``k`` at its last value, is a register set a step
    ahead from the digits' next flags, so digit ``k``'s carry (``carries[k]``) is one AND
    of two registers, not an AND over every flag inside it. ``start``: the statements of
    the nest's start values; ``step``: those of a step (where ``carry_in`` is high).
    """

    def __init__(self, digits, carry_in, name):
        pre = [Const(1)] + [Signal(name=f"{name}_pre{k}") for k in range(1, len(digits))]
        self.carries = [carry_in & p for p in pre]
        nxt = [d.next_last(c) for d, c in zip(digits, self.carries)]
        self.start = [p.eq(Cat(*(d.first for d in digits[:k])).all()) for k, p in enumerate(pre) if k]
        self.step = [p.eq(Cat(*nxt[:k]).all()) for k, p in enumerate(pre) if k]


def odometer(m, digits, done, carries=None):
    """Advance a nest of loop counters by one step, like an odometer.

    ``digits`` lists, innermost first, ``(is_last, step, wrap)``: the digit
    steps when every digit inside it is at its last value and it is not;
    it wraps (and carries outwards) when it is too. ``done`` runs when the
    outermost digit wraps. ``carries``: each digit's carry in, if the caller
    keeps them (default: the AND of the inner digits' flags; the innermost
    digit steps every time). Statements go to the sync domain.
    """
    if carries is None:
        carries = [Cat(*(d[0] for d in digits[:k])).all() for k in range(len(digits))]
    for (is_last, step, wrap), carry in zip(digits, carries):
        with m.If(carry & ~is_last):
            m.d.sync += step
        with m.If(carry & is_last):
            m.d.sync += wrap
    with m.If(carries[-1] & digits[-1][0]):
        m.d.sync += done
