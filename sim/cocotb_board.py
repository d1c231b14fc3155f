"""cocotb testbench: the real host driver talks to the board core through its UART pins.

The device under test is :class:`tritium.boards.top.BoardCore` (UART, host
link, accelerator, LED logic: the board top minus PLL and I/O buffers) as
Verilog on Verilator. :class:`UartTransport` is a driver transport whose
``write`` / ``read`` run cocotb coroutines that drive and sample the serial
pins bit by bit (8N1); the unmodified :class:`tritium.sw.run.driver.Device` runs
in a thread (``cocotb.task.bridge``) and reaches the simulation through
``cocotb.task.resume``. One driver second is one simulated second.

The job (``$TRITIUM_JOB``, JSON, written by :func:`tritium.sim.runner.run_board_cocotb`):
``clk_hz``, ``baud``, ``model_dir`` (compiled folder), ``inputs`` / ``expected``
(``.npy``: input values and reference accumulators). Results go to
``$TRITIUM_RESULT``.
"""

import json
import os
import threading
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, RisingEdge, Timer, with_timeout


class UartTransport:
    """A serial port made of the DUT's ``rx_pin`` / ``tx_pin`` (driver transport)."""

    def __init__(self, dut, baud):
        self.dut = dut
        self.bit_ns = 1e9 / baud
        self.received = bytearray()
        self.framing_errors = 0
        self._arrived = Event()
        self._lock = threading.Lock()

    async def _send(self, data):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx_pin.value = bit
                await Timer(self.bit_ns, unit="ns")

    async def receiver(self):
        """Runs for the whole test: samples ``tx_pin`` mid-bit, collects bytes."""
        while True:
            await FallingEdge(self.dut.tx_pin)
            await Timer(self.bit_ns * 1.5, unit="ns")
            byte = 0
            for i in range(8):
                byte |= int(self.dut.tx_pin.value) << i
                await Timer(self.bit_ns, unit="ns")
            if not int(self.dut.tx_pin.value):
                self.framing_errors += 1
            self.received.append(byte)
            self._arrived.set()

    async def _read(self, n, timeout):
        deadline_ns = timeout * 1e9
        waited = 0.0
        step = max(self.bit_ns * 10, 1000.0)
        while len(self.received) < n and waited < deadline_ns:
            self._arrived.clear()
            try:
                await with_timeout(self._arrived.wait(), step, "ns")
            except Exception:            # SimTimeoutError: a quiet slice of time
                pass
            waited += step
        out = bytes(self.received[:n])
        del self.received[:n]
        return out

    async def _idle(self, seconds):
        await Timer(seconds * 1e9, unit="ns")

    # -- the driver's interface (called from the driver thread) --------------

    def write(self, data):
        resume(self._send)(bytes(data))

    def read(self, n, timeout):
        return resume(self._read)(n, timeout)

    def idle(self, seconds):
        resume(self._idle)(seconds)


def _driver_session(transport, job, report):
    """The host side, in a thread: classify, damage frames, reload, classify again."""
    from tritium.hw import protocol
    from tritium.sw.compiler.image import read_compiled
    from tritium.sw.run.driver import Device, DeviceError, FrameDecoder, encode_request

    model_dir = Path(job["model_dir"])
    compiled = read_compiled(model_dir)
    values = np.load(job["inputs"])
    expected = np.load(job["expected"])
    dev = Device(transport, timeout=0.2, run_timeout=1.0, retries=3)

    st = dev.status()
    report["hw_hash_ok"] = st.hw_hash == compiled.config.hash
    report["boot_image_valid"] = bool(st.image_valid)
    # 1. The model that the "bitstream" holds (memory init), no download.
    acc, pred, cycles = dev.infer(compiled, values)
    report["boot_bit_exact"] = bool(np.array_equal(acc, expected))
    report["cycles"] = [int(c) for c in cycles]

    # 2. Damaged frames are detected; the device answers again afterwards.
    def exchange(raw, seconds=0.3):
        transport.write(raw)
        dec = FrameDecoder()
        frames = []
        while not frames:
            data = transport.read(dec.needed(), seconds)
            if not data:
                return None
            frames = dec.feed(data)
        return frames[0]

    good = encode_request(protocol.Cmd.STATUS, 0x55)
    bad = exchange(good[:-1] + bytes([good[-1] ^ 0x40]))
    report["bad_crc_nak"] = bool(bad is not None and bad.is_nak
                                 and bad.payload[0] == protocol.Nak.CRC)
    report["status_after_bad_crc"] = dev.status().hw_hash == compiled.config.hash
    frame = encode_request(protocol.Cmd.INPUT, 0x56, bytes(12))
    cut = exchange(frame[:9], seconds=4 * protocol.IDLE_TIMEOUT_S)
    report["truncated_nak"] = bool(cut is not None and cut.is_nak
                                   and cut.payload[0] == protocol.Nak.TIMEOUT)
    report["status_after_truncated"] = dev.status().hw_hash == compiled.config.hash
    transport.write(bytes(range(0x10, 0x50)))          # line noise without a start byte
    report["status_after_noise"] = dev.status().hw_hash == compiled.config.hash

    # 3. A corrupted model image is refused; the good one loads; results stay exact.
    image = bytearray((model_dir / "model.tim").read_bytes())
    image[len(image) // 2] ^= 0x01
    try:
        dev.load_image(bytes(image), check=False)
        report["corrupt_image_refused"] = False
    except DeviceError:
        report["corrupt_image_refused"] = True
    report["invalid_after_corrupt"] = not dev.status().image_valid
    dev.load_image(model_dir / "model.tim")
    acc2, pred2, _ = dev.infer(compiled, values)
    report["reload_bit_exact"] = bool(np.array_equal(acc2, expected))
    report["predictions"] = [int(p) for p in pred2]
    report["resent"] = dev.resent


@cocotb.test()
async def driver_over_uart(dut):
    job = json.loads(Path(os.environ["TRITIUM_JOB"]).read_text())
    period_ns = 1e9 / job["clk_hz"]
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    dut.rx_pin.value = 1
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    transport = UartTransport(dut, job["baud"])
    cocotb.start_soon(transport.receiver())
    report = {}
    await bridge(_driver_session)(transport, job, report)
    report["framing_errors"] = transport.framing_errors
    # The checks are judged by the caller (tests/sim/test_board_uart.py), from this report.
    Path(os.environ["TRITIUM_RESULT"]).write_text(json.dumps(report, indent=2))
