"""A :class:`~tritium.hw.host.HostLink` in the Amaranth simulator, as a driver transport.

:class:`SimTransport` has the transport interface of :mod:`tritium.sw.run.driver`
(``write(bytes)``, ``read(n, timeout)``): written bytes go into the link's
``rx`` stream one per cycle, ``tx`` bytes are collected, and ``read`` advances
the simulation until it has ``n`` bytes or ``timeout`` (driver seconds,
``cycles_per_second`` simulated cycles each) has passed. Single-threaded
and deterministic: the driver's own waiting moves simulated time.
"""

from collections import deque

from amaranth.sim import Simulator

#: Cycles simulated per step of :meth:`SimTransport.read`.
_STEP = 32


class SimTransport:
    """Byte pipe to a HostLink under simulation.

    Parameters
    ----------
    dut : HostLink
    cycles_per_second : int
        Simulated cycles that one second of driver timeout lasts.
    """

    def __init__(self, dut, cycles_per_second=20_000, period=1e-8):
        self.dut, self.cycles_per_second, self.period = dut, cycles_per_second, period
        self.to_dut, self.from_dut = deque(), deque()
        self.cycle = 0
        self._t = 0.0
        self.sim = Simulator(dut)
        self.sim.add_clock(period)
        self.sim.add_testbench(self._pump, background=True)

    async def _pump(self, ctx):
        dut = self.dut
        ctx.set(dut.tx.ready, 1)
        while True:
            offered = bool(self.to_dut)     # write() may add bytes while we wait
            ctx.set(dut.rx.valid, offered)
            if offered:
                ctx.set(dut.rx.payload, self.to_dut[0])
            _, _, ready, valid, data = await ctx.tick().sample(dut.rx.ready, dut.tx.valid,
                                                               dut.tx.payload)
            self.cycle += 1
            if offered and ready:
                self.to_dut.popleft()
            if valid:
                self.from_dut.append(data)

    def run(self, cycles):
        """Advance the simulation by ``cycles`` clock cycles."""
        self._t += cycles * self.period
        self.sim.run_until(self._t)

    def write(self, data):
        self.to_dut.extend(bytes(data))

    def read(self, n, timeout):
        limit = self.cycle + max(1, int(timeout * self.cycles_per_second))
        while len(self.from_dut) < n and self.cycle < limit:
            self.run(min(_STEP, limit - self.cycle))
        return bytes(self.from_dut.popleft() for _ in range(min(n, len(self.from_dut))))

    def close(self):
        """Nothing to release (the transport interface of a serial port)."""
