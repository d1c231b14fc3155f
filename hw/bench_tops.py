"""Benchmark tops for synthesis counts and Fmax: a PE array, an accelerator or a
host interface whose input ports an LFSR drives and whose outputs fold into one
pin, so synthesis keeps every path and the I/O count fits any package
(:mod:`tritium.sw.bench.synth` measures them).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .pe import PEArray


class BenchTop(wiring.Component):
    """A PE array driven by an LFSR, its results folded into one output pin.

    Members
    -------
    o : Out(1)
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({"o": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.array = array = PEArray(cfg)
        lfsr, bits = _lfsr_bits(m)
        m.d.comb += [
            array.i.valid.eq(lfsr[0]),
            array.i.payload.as_value().eq(bits(len(array.i.payload.as_value()), 1)),
            array.o.ready.eq(lfsr[5]),
            array.wload.en.eq(lfsr[9] & lfsr[10]),
            array.wload.bank.eq(bits(len(array.wload.bank), 2)),
            array.wload.addr.eq(bits(len(array.wload.addr), 3)),
            array.wload.data.eq(bits(len(array.wload.data), 4)),
        ]
        m.d.comb += self.o.eq(_fold(m, list(array.o.payload.as_value())))
        return m


def _lfsr_bits(m, width=64):
    """A free-running LFSR in ``m``; returns it and ``bits(n, salt)``: n pseudo-random bits."""
    lfsr = Signal(width, init=1)
    m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[1] ^ lfsr[3] ^ lfsr[4]))

    # Every bit is the XOR of a distinct pair of taps: no bit of a port is constant or a
    # copy of another (synthesis would drop or merge the logic and memory columns behind it).
    pairs = [(a, b) for a in range(width) for b in range(a + 1, width)]

    def bits(n, salt):
        assert n <= len(pairs)
        return Cat(*(lfsr[a] ^ lfsr[b] for a, b in
                     (pairs[(salt * 97 + k) % len(pairs)] for k in range(n))))
    return lfsr, bits


def _fold(m, values):
    """XOR-fold ``values`` (1-bit) into one: 4 bits per LUT, a register per level."""
    while len(values) > 1:
        nxt = []
        for k in range(0, len(values), 4):
            reg = Signal()
            x = values[k]
            for v in values[k + 1:k + 4]:
                x = x ^ v
            m.d.sync += reg.eq(x)
            nxt.append(reg)
        values = nxt
    return values[0]


class AccelBenchTop(BenchTop):
    """An accelerator (``cfg``: AccelConfig) whose host ports an LFSR drives, its
    outputs folded into one pin ``o``.

    Every input port (start, program / activation / weight / threshold / store
    writes, result address) takes LFSR bits, so synthesis keeps every path;
    every output bit goes through :func:`_fold`.
    """

    def elaborate(self, platform):
        from amaranth.lib.wiring import In

        from .accel import Accelerator

        m = Module()
        m.submodules.accel = acc = Accelerator(self.cfg)
        _, bits = _lfsr_bits(m)
        outs = []
        for salt, (path, member) in enumerate(acc.signature.members.flatten()):
            if member.is_signature:
                continue
            port = acc
            for name in path:
                port = getattr(port, name)
            value = port.as_value() if hasattr(port, "as_value") else port
            if member.flow == In:
                m.d.comb += value.eq(bits(len(value), salt + 1))
            else:
                outs += list(value)
        m.d.comb += self.o.eq(_fold(m, outs))
        return m


class HostLinkAlone(wiring.Component):
    """A HostLink whose accelerator is replaced by top-level ports (for synthesis counts).

    The accelerator's host ports become this component's ``acc`` ports, so
    synthesis keeps every path through them and counts the host interface
    alone.

    Members
    -------
    rx, tx, status
        As :class:`~tritium.hw.host.HostLink`.
    acc
        The accelerator's host ports, flipped.
    """

    class _Ports(wiring.Component):
        def elaborate(self, platform):
            return Module()

    def __init__(self, cfg):
        from amaranth.lib import stream
        from amaranth.lib.wiring import In

        from .host import HostLink, HostLinkStatus

        self.link = HostLink(cfg)
        self._accel_sig = self.link.accel.signature
        self.link.accel._MustUse__silence = True        # replaced, never elaborated
        self.link.accel = self._Ports(self._accel_sig)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "status": Out(HostLinkStatus()), "acc": Out(self._accel_sig.flip())})

    def elaborate(self, platform):
        from amaranth.lib.wiring import In

        m = Module()
        m.submodules.link = link = self.link
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.status, wiring.flipped(self.status))
        for path, member in self._accel_sig.members.flatten():
            if member.is_signature:
                continue
            inner, outer = link.accel, self.acc
            for name in path:
                inner, outer = getattr(inner, name), getattr(outer, name)
            m.d.comb += outer.eq(inner) if member.flow == In else inner.eq(outer)
        return m
