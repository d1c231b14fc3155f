"""The dispatcher in the Amaranth simulator, against a Python model of the protocol's
rules (docs/host.md): for a stream of random requests, in the link's image and run
states, the action it takes and the response it asks the sender for."""

import random


from host_bench import run_testbench
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.host_dispatch import Dispatcher
from tritium.hw.protocol import Cmd, Err, Nak

CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16, thr_depth=8),
                  act_depth=32, res_depth=8, prog_depth=16)
POS_BITS = 12


class Model:
    """What a request does: ``(action, response)``; the state a START's resend needs."""

    def __init__(self):
        self.last_start = None      # the sequence number of the last START that ran

    def decide(self, cmd, seq, length, arg, pos, valid, failing):
        def nak(reason):
            return None, ("nak", reason)
        offset = arg
        if cmd == Cmd.STATUS:
            return nak(Nak.LENGTH) if length else (None, ("status",))
        if cmd == Cmd.IMAGE:
            if length < 4:
                return nak(Nak.LENGTH)
            if offset == 0:
                action = "new_image"
            elif offset == pos:
                action = "next_chunk"
            elif offset < pos:
                return None, ("status",)
            else:
                return nak(Nak.OFFSET)
            self.last_start = None
            return action, ("status",)
        if cmd == Cmd.INPUT:
            if length < 4:
                return nak(Nak.LENGTH)
            if pos and not valid and not failing:
                return nak(Nak.STATE)
            self.last_start = None
            return "input", ("status",)
        if cmd == Cmd.START:
            if length:
                return nak(Nak.LENGTH)
            if not valid:
                return nak(Nak.STATE)
            if self.last_start == seq:
                return None, ("status",)
            self.last_start = seq
            return "start", ("status",)
        if cmd == Cmd.RESULTS:
            if length != 4:
                return nak(Nak.LENGTH)
            if (arg & 0xFFFF) + (arg >> 16) > CFG.res_depth:
                return nak(Nak.RANGE)
            return None, ("results",)
        return nak(Nak.COMMAND)


def _requests(rng, n):
    cmds = list(Cmd) + [0x7E]
    out = []
    for _ in range(n):
        cmd = rng.choice(cmds)
        length = rng.choice([0, 0, 2, 4, 4, 4, 9, 256])
        pos = rng.choice([0, 0, 100, 4000])
        arg = rng.choice([0, pos, pos + 4, max(pos - 3, 0), 1 << 20,
                          rng.randrange(8) | rng.randrange(10) << 16])
        out.append(dict(cmd=cmd, seq=rng.choice([1, 2]), length=length, arg=arg, pos=pos,
                        valid=rng.random() < 0.6, failing=rng.random() < 0.2))
    return out


def run(requests):
    dut, got = Dispatcher(CFG, POS_BITS), []

    async def testbench(ctx):
        frame = dut.frame
        for r in requests:
            ctx.set(frame.cmd, r["cmd"])
            ctx.set(frame.seq, r["seq"])
            ctx.set(frame.length, r["length"])
            ctx.set(frame.arg, r["arg"])
            ctx.set(dut.image_pos, r["pos"])
            ctx.set(dut.image_valid, r["valid"])
            ctx.set(dut.image_failing, r["failing"])
            for _ in range(3):          # the tests and the decision settle (CRC cycles)
                await ctx.tick()
            ctx.set(frame.request, 1)
            action, response = None, None
            for _ in range(100):
                for name in ("new_image", "next_chunk", "input_start", "run_start"):
                    if ctx.get(getattr(dut, name)):
                        assert action is None
                        action = {"input_start": "input", "run_start": "start"}.get(name, name)
                ctx.set(dut.image_done, action in ("new_image", "next_chunk"))
                ctx.set(dut.input_ok, action == "input")
                ctx.set(dut.run_done, action == "start" and ctx.get(dut.run_start) == 0)
                if ctx.get(dut.send_nak):
                    response = ("nak", Nak(ctx.get(dut.nak_reason)))
                elif ctx.get(dut.send_status):
                    response = ("status",)
                elif ctx.get(dut.send_results):
                    response = ("results",)
                active = ctx.get(dut.active)
                ctx.set(dut.sender_done, active)
                released = ctx.get(frame.release)
                await ctx.tick()
                if released:
                    break
            else:
                raise AssertionError(f"no response to {r}")
            for name in ("image_done", "input_ok", "run_done", "sender_done", "request"):
                ctx.set(getattr(dut, name) if name != "request" else frame.request, 0)
            got.append((action, response))

    run_testbench(dut, testbench)
    return got


def test_dispatcher_follows_the_protocol():
    requests = _requests(random.Random(5), 250)
    model = Model()
    want = [model.decide(**r) for r in requests]
    assert {a for a, _ in want} == {None, "new_image", "next_chunk", "input", "start"}
    assert {resp[1] for _, resp in want if resp[0] == "nak"} == set(Nak) - {Nak.CRC,
                                                                            Nak.TIMEOUT}
    assert run(requests) == want


def test_a_resent_start_runs_once():
    """START runs once per sequence number, until an IMAGE or INPUT action comes between."""
    def req(cmd, seq, length=0, arg=0):
        return dict(cmd=cmd, seq=seq, length=length, arg=arg, pos=0, valid=True, failing=False)
    requests = [req(Cmd.START, 1), req(Cmd.START, 1), req(Cmd.START, 2), req(Cmd.STATUS, 2),
                req(Cmd.START, 2), req(Cmd.INPUT, 3, 4), req(Cmd.START, 2), req(Cmd.START, 2)]
    model = Model()
    want = [model.decide(**r)[0] for r in requests]
    assert want == ["start", None, "start", None, None, "input", "start", None]
    assert [action for action, _ in run(requests)] == want


def test_receiver_refusals_are_answered():
    """A frame the receiver refused gets the NAK of its reason."""
    dut, got = Dispatcher(CFG, POS_BITS), []

    async def testbench(ctx):
        for flag in ("nak_length", "nak_timeout", "nak_crc"):
            ctx.set(getattr(dut.frame, flag), 1)
            for _ in range(10):
                if ctx.get(dut.send_nak):
                    got.append(Nak(ctx.get(dut.nak_reason)))
                ctx.set(dut.sender_done, ctx.get(dut.active))
                released = ctx.get(dut.frame.release)
                await ctx.tick()
                if released:
                    break
            ctx.set(getattr(dut.frame, flag), 0)
            ctx.set(dut.sender_done, 0)

    run_testbench(dut, testbench)
    assert got == [Nak.LENGTH, Nak.TIMEOUT, Nak.CRC]


def test_errors_of_runs_and_images():
    """``error``: cleared by START and by a new image, set by a run's error or an image's
    failure."""
    dut, seen = Dispatcher(CFG, POS_BITS), []

    async def testbench(ctx):
        ctx.set(dut.image_failure, 1)
        ctx.set(dut.image_failure_code, Err.HASH)
        await ctx.tick()
        ctx.set(dut.image_failure, 0)
        seen.append(Err(ctx.get(dut.error)))
        ctx.set(dut.image_valid, 1)
        ctx.set(dut.frame.cmd, Cmd.START)
        ctx.set(dut.frame.length, 0)
        for _ in range(3):
            await ctx.tick()
        ctx.set(dut.frame.request, 1)
        while not ctx.get(dut.run_start):
            await ctx.tick()
        seen.append(Err(ctx.get(dut.error)))
        await ctx.tick()
        ctx.set(dut.run_error, 1)
        ctx.set(dut.run_error_code, Err.BAD_OPCODE)
        await ctx.tick()
        await ctx.tick()
        seen.append(Err(ctx.get(dut.error)))

    run_testbench(dut, testbench)
    assert seen == [Err.HASH, Err.NONE, Err.BAD_OPCODE]
