"""Popcount of a lane vector, built for 4-input LUTs, with configurable pipelining."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import carry_in_lanes, tree_levels
from .errors import TritiumError
from .pipeline import register

STYLES = ("tree", "chain")


def adder_widths(width, carry_in=True):
    """Output widths of the tree's carry-chain adders (levels 2 and up), for estimates."""
    items = [2] * ((width - (carry_in_lanes(width) if carry_in else 0)) // 2)
    if (width - (carry_in_lanes(width) if carry_in else 0)) % 2:
        items.append(1)
    widths = []
    while len(items) > 1:
        nxt = [max(a, b) + 1 for a, b in zip(items[0::2], items[1::2])]
        widths += nxt
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return widths


def register_levels(levels, stages):
    """Tree levels (1-based) after which a pipeline register sits.

    The first register follows level 1 (lane op + first adder level: the
    flip-flops share logic cells with those LUTs, and they cut the path from
    the weight block RAM, whose clock-to-output time is long); the second
    follows the last level (the tree output, so the accumulator adder starts
    from a register); further registers are spread evenly in between.
    """
    if stages <= 0 or levels <= 0:
        return []
    positions = [1]
    if stages >= 2 and levels >= 2:
        positions.append(levels)
    inner = list(range(2, levels))
    extra = stages - len(positions)
    for i in range(1, extra + 1):
        positions.append(inner[(i * len(inner)) // (extra + 1)] if extra < len(inner) else inner[i - 1])
    return sorted(set(positions))


class Popcount(wiring.Component):
    """Number of set bits of ``i``.

    The ``"tree"`` style is a balanced adder tree laid out for 4-input LUTs:
    the first level adds lane *pairs* with plain logic (``sum = a ^ b``,
    ``carry = a & b``), so the synthesiser folds a two-input lane operation
    (XNOR, AND) into the same LUT4s (one LUT4 per lane for lane op plus first
    level); every later level is a two-operand adder that maps onto carry
    chains. The ``"chain"`` style is the naive baseline: one adder per lane,
    each adding one bit to the running sum (benchmarks only).

    Parameters
    ----------
    width : int
        Lanes to count (at least 2).
    stages : int
        Pipeline registers (0 .. ``tree_levels(width)``), spread evenly over the
        levels; the latency is ``stages`` cycles.
    style : str
        ``"tree"`` (default) or ``"chain"``.
    in_reg : bool
        Register the lanes before the tree (one more cycle: ``stages + 1`` in all).

    Members
    -------
    i : In(width)
        The lanes.
    en : In(1)
        Clock enable of the pipeline registers (hold while 0).
    o : Out(width.bit_length())
        The count, ``stages`` (+ 1 with ``in_reg``) cycles after ``i``.
    """

    def __init__(self, width, stages=0, style="tree", carry_in=True, in_reg=False):
        self._MustUse__silence = True  # no "never used" warning when a check below fails
        if not isinstance(width, int) or width < 2:
            raise TritiumError(f"popcount width must be an integer >= 2, got {width!r}")
        if style not in STYLES:
            raise TritiumError(f"popcount style must be one of {', '.join(STYLES)}, got {style!r}")
        levels = tree_levels(width, carry_in) if style == "tree" else tree_levels(width, False)
        if not 0 <= stages <= levels:
            raise TritiumError(f"popcount of {width} lanes takes 0..{levels} pipeline stages, got {stages}")
        self.width, self.stages, self.style, self.carry_in = width, stages, style, carry_in
        self.in_reg = in_reg
        self._MustUse__silence = False
        super().__init__({"i": In(width), "en": In(1), "o": Out(width.bit_length())})

    def _reg(self, m, value, name):
        return register(m, value, name, en=self.en, reset_less=True, attrs={})

    def elaborate(self, platform):
        m = Module()
        lanes = self._reg(m, self.i, "lanes_in") if self.in_reg else self.i
        if self.style == "chain":
            self._chain(m, lanes)
        else:
            self._tree(m, lanes)
        return m

    def _tree(self, m, i):
        levels = tree_levels(self.width, self.carry_in)
        regs_after = set(register_levels(levels, self.stages))
        lanes = [i[k] for k in range(self.width)]
        # About a third of the lanes enter the tree as carry-ins of the adders
        # (a carry chain adds a third, 1-bit operand for free).
        n_cin = carry_in_lanes(self.width) if self.carry_in else 0
        values, cins = lanes[:self.width - n_cin], lanes[self.width - n_cin:]
        level = 0
        while len(values) > 1:
            level += 1
            nxt = []
            for k in range(0, len(values) - 1, 2):
                a, b = values[k], values[k + 1]
                if level == 1:
                    nxt.append(Cat(a ^ b, a & b))
                    continue
                # A kept net per adder: the synthesiser maps each adder to its
                # own carry chain instead of merging the tree into one
                # multi-operand sum built from full-adder LUTs.
                total = Signal(max(len(a), len(b)) + 1, name=f"sum{level}_{k}", attrs={"keep": 1})
                m.d.comb += total.eq(a + b + cins.pop() if cins else a + b)
                nxt.append(total)
            if len(values) % 2:
                nxt.append(values[-1])
            assert len(values) > 1 or not cins, "carry-in lanes left over"
            values = nxt
            if level in regs_after:
                values = [self._reg(m, v, f"l{level}_{k}") for k, v in enumerate(values)]
                cins = [self._reg(m, c, f"cin{level}_{k}") for k, c in enumerate(cins)]
        (total,) = values
        m.d.comb += self.o.eq(total[:len(self.o)])

    def _chain(self, m, i):
        every = -(-self.width // (self.stages + 1)) if self.stages else self.width + 1
        total = i[0]
        delayed = i
        for k in range(1, self.width):
            total = (total + delayed[k])[:(k + 1).bit_length()]
            if k % every == 0 and k // every <= self.stages:
                total = self._reg(m, total, f"sum{k}")
                delayed = self._reg(m, delayed, f"lanes{k}")
        regs = sum(1 for k in range(1, self.width) if k % every == 0 and k // every <= self.stages)
        for j in range(regs, self.stages):
            total = self._reg(m, total, f"out{j}")
        m.d.comb += self.o.eq(total)
