"""The host link's dispatcher: what a received request does, and its response.

:class:`Dispatcher` takes the frame the request receiver holds, decides what it asks
(:mod:`tritium.hw.protocol`), hands an IMAGE chunk to the image loader and an INPUT
payload to the input writer, runs the accelerator for a START, and has the response
sender answer; then it releases the receiver for the next frame.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .host_crc import CrcRequest
from .host_receiver import ReceivedFrame
from .host_sender import Response
from .protocol import ERR_BITS, Cmd, Err, Nak

#: What EXEC can do with a request, decided a cycle ahead (else: RESULTS).
ACTIONS = ("nak", "status", "new_image", "next_chunk", "input", "start")


class _Responses:
    """Where a state goes to start a response: a state per kind (TX_STATUS, TX_NAK,
    TX_RESULTS) sets the sender's registers, so no OR over every state that responds
    reaches them. A NAK with a fixed reason goes to a state of its own (TX_NAK_CRC, ...),
    which sets the reason: its register takes it from one state flip-flop, not from an
    OR of every test that NAKs (an OR 7 LUT levels deep on the iCE40; docs/timing.md).
    EXEC's NAK (the decided reason, a register that holds through the next cycle) goes
    to TX_NAK.
    """

    _STATES = {Response.STATUS: "TX_STATUS", Response.NAK: "TX_NAK",
               Response.RESULTS: "TX_RESULTS"}

    def __init__(self, m):
        self.m = m
        self.nak_states = {}    # state name -> the reason it sets (a constant or a register)

    def respond(self, kind, reason=0):
        name = self._STATES[kind]
        if kind == Response.NAK:
            if isinstance(reason, Nak):
                name = f"TX_NAK_{reason.name}"
            self.nak_states[name] = reason
        self.m.next = name

    def nak(self, reason):
        self.respond(Response.NAK, reason)

    def status(self):
        self.respond(Response.STATUS)


class Dispatcher(wiring.Component):
    """A received request's execution and its response.

    Every decision starts from flip-flops: the request's tests are registered every
    cycle, and EXEC's decision (one of :data:`ACTIONS`, or RESULTS) is registered from
    them a cycle later; both settle while the receiver checks the frame CRC. A START
    repeated with the same sequence number runs once (its STATUS is sent again).

    Every state waits while ``hold`` (the serial CRC works).

    Parameters
    ----------
    cfg : AccelConfig
    image_pos_bits : int

    Members
    -------
    frame : In(ReceivedFrame())
    hold : In(1)
    new_image, next_chunk : Out(1)
    image_done, image_valid, image_failing, image_failure : In(1)
    image_failure_code : In(ERR_BITS)
    image_pos : In(image_pos_bits)
        The image loader.
    input_start : Out(1)
    input_ok, input_length, input_range : In(1)
        The input writer.
    run_start : Out(1)
        The accelerator's start, a pulse from a register.
    run_done, run_error : In(1), run_error_code : In(ERR_BITS)
    send_status, send_nak, send_results, prep, active : Out(1)
    nak_reason : Out(range(max(Nak) + 1))
    sender_done, sender_feed, sender_shift : In(1)
        The response sender.
    crc : Out(CrcRequest())
    error : Out(ERR_BITS)
        The last error: of the last run, or of the image loaded since.
    """

    def __init__(self, cfg, image_pos_bits):
        self.cfg = cfg
        super().__init__({
            "frame": In(ReceivedFrame()), "hold": In(1),
            "new_image": Out(1), "next_chunk": Out(1), "image_done": In(1),
            "image_valid": In(1), "image_failing": In(1), "image_failure": In(1),
            "image_failure_code": In(ERR_BITS), "image_pos": In(image_pos_bits),
            "input_start": Out(1), "input_ok": In(1), "input_length": In(1),
            "input_range": In(1),
            "run_start": Out(1), "run_done": In(1), "run_error": In(1),
            "run_error_code": In(ERR_BITS),
            "send_status": Out(1), "send_nak": Out(1), "send_results": Out(1), "prep": Out(1),
            "active": Out(1), "nak_reason": Out(range(max(Nak) + 1)),
            "sender_done": In(1), "sender_feed": In(1), "sender_shift": In(1),
            "crc": Out(CrcRequest()), "error": Out(ERR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        last_seq, last_ok = Signal(8), Signal()     # a repeated START runs once
        decision = self._decision(m, self._request_tests(m, last_seq, last_ok))
        responses = _Responses(m)
        m.d.sync += self.run_start.eq(0)
        with m.If(~self.hold), m.FSM(name="dispatch") as fsm:
            with m.State("IDLE"):
                self._take_frame(m, responses)
            with m.State("EXEC"):
                self._execute(m, decision, responses, last_seq, last_ok)
            self._wait_states(m, responses)
            self._transmit_states(m, responses)
        m.d.comb += self.prep.eq(Cat(fsm.ongoing(n) for n in ["TX_STATUS", "TX_RESULTS",
                                                            *responses.nak_states,
                                                            "TX_PREP"]).any())
        m.d.comb += self.crc.from_tx.eq(fsm.ongoing("TX"))
        with m.If(self.image_failure):
            m.d.sync += self.error.eq(self.image_failure_code)
        return m

    def _take_frame(self, m, responses):
        """IDLE: the receiver's frame, or the reason it refused one."""
        frame = self.frame
        with m.If(frame.request):
            m.next = "EXEC"
        with m.Elif(frame.nak_length):
            responses.nak(Nak.LENGTH)
        with m.Elif(frame.nak_timeout):
            responses.nak(Nak.TIMEOUT)
        with m.Elif(frame.nak_crc):
            responses.nak(Nak.CRC)

    def _execute(self, m, decision, responses, last_seq, last_ok):
        """EXEC: the decided action."""
        with m.If(decision.nak):
            responses.nak(decision.reason)
        with m.Elif(decision.status):
            responses.status()
        with m.Elif(decision.new_image):        # offset 0: a new image
            m.d.sync += [self.error.eq(Err.NONE), last_ok.eq(0)]
            m.d.comb += self.new_image.eq(1)
            m.next = "IMAGE"
        with m.Elif(decision.next_chunk):       # the next chunk of the image
            m.d.sync += last_ok.eq(0)
            m.d.comb += self.next_chunk.eq(1)
            m.next = "IMAGE"
        with m.Elif(decision.input):
            m.d.sync += last_ok.eq(0)
            m.d.comb += self.input_start.eq(1)
            m.next = "INPUT"
        with m.Elif(decision.start):
            m.d.sync += [self.error.eq(Err.NONE), last_seq.eq(self.frame.seq), last_ok.eq(1)]
            m.next = "RUN_GO"
        with m.Else():
            responses.respond(Response.RESULTS)

    def _wait_states(self, m, responses):
        """IMAGE and INPUT (the loader or writer at work), RUN_GO, RUN_START, RUN."""
        with m.State("IMAGE"):
            with m.If(self.image_done):
                responses.status()
        with m.State("INPUT"):
            with m.If(self.input_length):
                responses.nak(Nak.LENGTH)
            with m.Elif(self.input_range):
                responses.nak(Nak.RANGE)
            with m.Elif(self.input_ok):
                responses.status()
        with m.State("RUN_GO"):         # the accelerator's start, from a register
            m.d.sync += self.run_start.eq(1)
            m.next = "RUN_START"
        with m.State("RUN_START"):      # start is high: done / error clear at this edge
            m.next = "RUN"
        with m.State("RUN"):
            with m.If(self.run_done | self.run_error):
                with m.If(self.run_error):
                    m.d.sync += self.error.eq(self.run_error_code)
                responses.status()

    def _transmit_states(self, m, responses):
        """A state per response start (the NAK reasons :class:`_Responses` collected),
        TX_PREP and TX: the sender's bytes out, through the frame CRC; then the
        receiver is released."""
        pulses = {Response.STATUS: self.send_status, Response.NAK: self.send_nak,
                  Response.RESULTS: self.send_results}
        starts = [(Response.STATUS, "TX_STATUS"), (Response.RESULTS, "TX_RESULTS")]
        starts += [(Response.NAK, name) for name in responses.nak_states]
        for kind, name in starts:
            with m.State(name):
                m.d.comb += [pulses[kind].eq(1), self.crc.init_frame.eq(1)]
                if kind == Response.NAK:
                    m.d.comb += self.nak_reason.eq(responses.nak_states[name])
                m.next = "TX_PREP"
        with m.State("TX_PREP"):        # the first byte's registers fill
            m.next = "TX"
        with m.State("TX"):
            m.d.comb += self.active.eq(1)
            with m.If(self.sender_feed):
                m.d.comb += [self.crc.feed.eq(1), self.crc.to_frame.eq(1),
                             self.crc.shift.eq(self.sender_shift)]
            with m.If(self.sender_done):
                m.d.comb += self.frame.release.eq(1)
                m.next = "IDLE"

    def _request_tests(self, m, last_seq, last_ok):
        """The request's tests, registered every cycle: the receiver holds the request
        registers from the frame's last byte on, so EXEC starts from flip-flops."""
        cfg, frame, pos = self.cfg, self.frame, self.image_pos
        arg, length = frame.arg, frame.length
        offset_ok, offset = arg[len(pos):] == 0, arg[:len(pos)]     # narrow comparators
        count = arg[16:]
        entry_bits = len(Const(cfg.res_depth))      # first, count < 2**entry_bits: a narrow adder
        tests = {
            "len_ne0": length != 0, "len_lt4": length < 4, "len_ne4": length != 4,
            "new_image": offset_ok & (offset == 0), "next_chunk": offset_ok & (offset == pos),
            "resent_chunk": offset_ok & (offset < pos),
            "half_loaded": (pos != 0) & ~self.image_valid & ~self.image_failing,
            "resent_start": last_ok & (frame.seq == last_seq),
            "results_range": ((arg[entry_bits:16] != 0) | (count[entry_bits:] != 0) |
                              (arg[:entry_bits] + count[:entry_bits] > cfg.res_depth)),
        }
        tests.update({f"cmd_{c.name.lower()}": frame.cmd == c for c in Cmd})
        registered = {name: Signal(name=f"t_{name}") for name in tests}
        m.d.sync += [registered[name].eq(value) for name, value in tests.items()]
        return registered

    def _decision(self, m, tests):
        """What EXEC does with the request, registered from the registered tests: exactly
        one of :data:`ACTIONS` (``nak`` with ``reason``) or none of them (RESULTS)."""
        want = {n: Signal(name=f"want_{n}") for n in ACTIONS}
        want["reason"] = Signal(range(max(Nak) + 1), name="want_reason")

        def nak(reason):
            m.d.comb += [want["nak"].eq(1), want["reason"].eq(reason)]

        def do(action):
            m.d.comb += want[action].eq(1)

        with m.If(tests["cmd_status"]):
            with m.If(tests["len_ne0"]):
                nak(Nak.LENGTH)
            with m.Else():
                do("status")
        with m.Elif(tests["cmd_image"]):
            with m.If(tests["len_lt4"]):
                nak(Nak.LENGTH)
            with m.Elif(tests["new_image"]):
                do("new_image")
            with m.Elif(tests["next_chunk"]):
                do("next_chunk")
            with m.Elif(tests["resent_chunk"]):
                do("status")                # a resent chunk: received already
            with m.Else():
                nak(Nak.OFFSET)
        with m.Elif(tests["cmd_input"]):
            with m.If(tests["len_lt4"]):
                nak(Nak.LENGTH)
            with m.Elif(tests["half_loaded"]):
                nak(Nak.STATE)              # an image is half loaded: the assembler is busy
            with m.Else():
                do("input")
        with m.Elif(tests["cmd_start"]):
            with m.If(tests["len_ne0"]):
                nak(Nak.LENGTH)
            with m.Elif(~self.image_valid):
                nak(Nak.STATE)
            with m.Elif(tests["resent_start"]):
                do("status")                # a resent START: run already
            with m.Else():
                do("start")
        with m.Elif(tests["cmd_results"]):
            with m.If(tests["len_ne4"]):
                nak(Nak.LENGTH)
            with m.Elif(tests["results_range"]):
                nak(Nak.RANGE)
        with m.Else():
            nak(Nak.COMMAND)
        decision = _Decision({n: Signal.like(want[n], name=f"d_{n}") for n in want})
        m.d.sync += [getattr(decision, n).eq(want[n]) for n in want]
        return decision


class _Decision:
    """EXEC's registered decision: a register per action and ``reason``."""

    def __init__(self, registers):
        self.__dict__.update(registers)
