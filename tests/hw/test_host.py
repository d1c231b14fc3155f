"""The framed host interface: frame codec, HostLink (Amaranth simulator) and the driver.

The simulated HostLink is shared by the tests of this module (one
elaboration); every test leaves it able to take the next frame, which is
itself part of what is tested.
"""

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_bench import small_model
from tritium.hw import protocol
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.host import HostLink
from tritium.hw.image_format import HEADER, SECTION, SECTION_TYPES
from tritium.hw.protocol import MAX_PAYLOAD, Cmd, Err, Nak
from tritium.sim.host_sim import SimTransport
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.run.driver import (Device, DeviceError, FrameDecoder, Status, encode_request,
                               encode_response)
from tritium.sw.compiler.image import image_bytes
from tritium.sw.model.ir import ActType, Dense, IntModel
from tritium.sw.run.isasim import simulate

pytestmark = pytest.mark.xdist_group("host_link")

CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16, thr_depth=8),
                  act_depth=32, res_depth=8, prog_depth=16)
IDLE = 100      # cycles: the link's idle timeout in these tests


@pytest.fixture(scope="module")
def case():
    model = small_model()
    compiled = compile_model(model, CFG)
    return model, compiled, image_bytes(compiled)


@pytest.fixture(scope="module")
def link():
    transport = SimTransport(HostLink(CFG, idle_timeout=IDLE))
    return transport, Device(transport, timeout=1.0, run_timeout=2.0)


# ---------------------------------------------------------------- sans-IO codec

@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300),
       st.binary(max_size=20).map(lambda b: b.replace(bytes([protocol.REQUEST_START]), b"")),
       st.integers(1, 40))
def test_frame_round_trip(cmd, seq, payload, noise, piece):
    raw = noise + encode_request(cmd, seq, payload)
    dec = FrameDecoder(protocol.REQUEST_START)
    frames = []
    for i in range(0, len(raw), piece):
        frames += dec.feed(raw[i:i + piece])
    assert [(f.cmd, f.seq, f.payload, f.ok) for f in frames] == [(cmd, seq, payload, True)]
    assert dec.skipped == len(noise) and dec.needed() == 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=40), st.data())
def test_corrupted_frames_are_never_accepted(seq, payload, data):
    raw = bytearray(encode_response(Cmd.STATUS | protocol.RESPONSE_FLAG, seq, payload))
    bit = data.draw(st.integers(8, 8 * len(raw) - 1))       # any bit after the start byte
    raw[bit // 8] ^= 1 << (bit % 8)
    frames = FrameDecoder().feed(bytes(raw) + bytes(300))
    assert not any(f.ok for f in frames)


# ---------------------------------------------------------------- driver end to end

def test_device_loads_image_and_runs_bit_exact(link, case):
    transport, dev = link
    model, compiled, image = case
    st0 = dev.status()
    assert st0.hw_hash == CFG.hash
    loaded = dev.load_image(image)
    st1 = dev.status()
    assert st1.image_valid and st1.error == Err.NONE and st1.image_bytes == len(image)
    x = (2 * np.random.default_rng(5).integers(0, 2, (3, 20)) - 1).astype(np.int8)
    acc, pred, cycles = dev.infer(loaded, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    np.testing.assert_array_equal(pred, reference.run(model, x).argmax(axis=1))
    assert cycles == simulate(compiled, x)[1], "cycles must equal the ISA simulator's"


@pytest.mark.parametrize("chunk", [7, 13])
def test_image_chunks_may_cut_words_and_fields(case, chunk):
    """Chunk boundaries inside header fields, table entries and memory words."""
    model, compiled, image = case
    transport = SimTransport(HostLink(CFG, idle_timeout=IDLE))
    dev = Device(transport, timeout=1.0, run_timeout=2.0, chunk=chunk)
    # Half an image, then INPUT: refused, and the rest of the image still loads.
    reply = _exchange(transport, encode_request(Cmd.IMAGE, 1, protocol.OFFSET_ARG.pack(0)
                                                + image[:chunk]))
    assert not reply.is_nak and Status.decode(reply.payload).image_bytes == chunk
    assert _nak(_exchange(transport, encode_request(Cmd.INPUT, 2, bytes(4 + 2)))) == Nak.STATE
    loaded = dev.load_image(image)
    x = (2 * np.random.default_rng(6).integers(0, 2, (4, 20)) - 1).astype(np.int8)
    acc, _, _ = dev.infer(loaded, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))


def test_streamed_weights_load_through_the_link():
    """An accelerator with a weight store: the WSTORE section goes to the store, and the
    LOAD_W copies beside the RUNs give the reference's results and the ISA simulator's cycles."""
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=4, thr_depth=16), act_depth=32,
                      res_depth=8, prog_depth=32, store_depth=64)
    model = small_model()
    compiled = compile_model(model, cfg)
    assert compiled.store_words
    dev = Device(SimTransport(HostLink(cfg, idle_timeout=IDLE)), timeout=1.0, run_timeout=2.0)
    loaded = dev.load_image(image_bytes(compiled))
    x = (2 * np.random.default_rng(6).integers(0, 2, (2, 20)) - 1).astype(np.int8)
    acc, _, cycles = dev.infer(loaded, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == simulate(compiled, x)[1]


def test_segments_run_through_the_link():
    """A model too large for the accelerator at once (docs/accelerator.md "Segments"): per
    batch the driver loads each segment's model image and writes its band of the input; the
    activation buffers keep the earlier runs' outputs, and the second band's image, of the
    same weight phase, has no WEIGHTS or THRESHOLDS (the memories keep theirs); bit-exact,
    cycles the ISA simulator's."""
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=4, thr_depth=8), act_depth=4,
                      res_depth=8, prog_depth=16)
    model = small_model()
    compiled = compile_model(model, cfg, batch=4)
    assert len(compiled.segments) == 3 and compiled.plans[0].bands == ((0, 2), (2, 2))
    kinds = [{k for k, *_ in _sections(image_bytes(compiled.segment(k)))} for k in range(3)]
    assert [("WEIGHTS" in k, "THRESHOLDS" in k) for k in kinds] == [(True, True), (False, False),
                                                                   (True, True)]
    transport = SimTransport(HostLink(cfg, idle_timeout=IDLE))
    dev = Device(transport, timeout=1.0, run_timeout=2.0)
    x = (2 * np.random.default_rng(7).integers(0, 2, (8, 20)) - 1).astype(np.int8)
    acc, _, cycles = dev.infer(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == simulate(compiled, x)[1] == [compiled.io["cycles"]] * 2


def test_streamed_segments_run_through_the_link():
    """Weights streamed from a store too small for them at once: each weight phase's model
    image carries its own WSTORE section, a phase longer than the program memory runs in
    parts; through the link, bit-exact, cycles the ISA simulator's."""
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=8, thr_depth=16), act_depth=32,
                      res_depth=8, prog_depth=16, store_depth=24)
    model = small_model()
    compiled = compile_model(model, cfg, batch=2)
    assert [p.phase for p in compiled.plans] == [0, 1]      # fc0 streams in 2 parts, fc1 stays
    stores = [len(compiled.segment(k).store_words) for k in range(len(compiled.segments))]
    assert stores == [24, 0, 0]
    assert [compiled.segment(k).weight_banks is None for k in range(3)] == [False, True, False]
    dev = Device(SimTransport(HostLink(cfg, idle_timeout=IDLE)), timeout=1.0, run_timeout=2.0)
    x = (2 * np.random.default_rng(8).integers(0, 2, (4, 20)) - 1).astype(np.int8)
    acc, _, cycles = dev.infer(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == simulate(compiled, x)[1] == [compiled.io["cycles"]] * 2


# ---------------------------------------------------------------- the hardware's image checks

def _fix_crc(img):
    img = bytearray(img)
    struct.pack_into("<I", img, 28, 0)
    struct.pack_into("<I", img, 28, zlib.crc32(img))
    return bytes(img)


def _sections(img):
    """``(name, offset, size)`` of each section in an image's table."""
    names = {v: k for k, v in SECTION_TYPES.items()}
    return [(names[kind], offset, size) for kind, _, offset, size, _ in
            (SECTION.unpack_from(img, HEADER.size + i * SECTION.size)
             for i in range(HEADER.unpack_from(img)[3]))]


def _section(img, name):
    """``(table index, offset, size)`` of section ``name``."""
    for i, (kind, offset, size) in enumerate(_sections(img)):
        if kind == name:
            return i, offset, size
    raise KeyError(name)


def _patch(img, offset, data, fix=True):
    img = bytearray(img)
    img[offset:offset + len(data)] = data
    return _fix_crc(img) if fix else bytes(img)


def _flip(img, offset, fix):
    return _patch(img, offset, bytes([img[offset] ^ 0x40]), fix)


def _corruptions(image):
    weights = _section(image, "WEIGHTS")
    meta = _section(image, "META")
    other = compile_model(small_model(), AccelConfig(core=CFG.core.__class__(
        **{**CFG.core.__dict__, "thr_depth": 16}), act_depth=32, res_depth=8, prog_depth=16))
    return {
        "magic": (_patch(image, 0, b"TRITIUX\0"), Err.MAGIC),
        "image version": (_patch(image, 8, b"\x07\x00"), Err.IMAGE_VERSION),
        "isa version": (_patch(image, 10, b"\x09\x00"), Err.ISA_VERSION),
        "hash": (_patch(image, 16, bytes(8)), Err.HASH),
        "whole crc": (_flip(image, 28, fix=False), Err.IMAGE_CRC),
        "payload byte": (_flip(image, weights[1] + 3, fix=False), Err.SECTION_CRC),
        "section crc": (_flip(image, weights[1] + 3, fix=True), Err.SECTION_CRC),
        "section type": (_patch(image, HEADER.size + meta[0] * SECTION.size, b"\x09\x00"),
                         Err.SECTION_TABLE),
        "section offset": (_patch(image, HEADER.size + 4, b"\x00\x01\x00\x00"), Err.SECTION_TABLE),
        "total size": (_patch(image, 24, struct.pack("<I", len(image) - 1)), Err.SIZE),
        "section size": (_patch(image_bytes(other), 16, bytes.fromhex(CFG.hash)),
                         Err.SECTION_SIZE),
        "truncated": (image[:-50], Err.IMAGE_INCOMPLETE),
    }


def test_chained_array_through_the_link():
    """A chained array (hw/chain.py) with the ulx3s preset's registers (lane_reg, act_reg:
    the link's CRC byte and INPUT writes through registers too): the link reads each result
    gathered back along the slices, res_latency cycles after the address, and the real
    driver gets the reference's results and the ISA simulator's cycles."""
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16, thr_depth=8, weight_reg=True,
                                    addr_reg=True, chain=True, lane_reg=True),
                      act_depth=32, res_depth=8, prog_depth=16, act_reg=True)
    assert cfg.res_latency == cfg.pe + 2
    model = small_model(seed=4)
    compiled = compile_model(model, cfg)
    dev = Device(SimTransport(HostLink(cfg, idle_timeout=IDLE)), timeout=1.0, run_timeout=2.0)
    assert dev.status().hw_hash == cfg.hash
    loaded = dev.load_image(image_bytes(compiled))
    x = (2 * np.random.default_rng(9).integers(0, 2, (3, 20)) - 1).astype(np.int8)
    acc, _, cycles = dev.infer(loaded, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == simulate(compiled, x)[1]


def test_k_bit_outputs_through_the_link():
    """A core with out_bits 2 (three thresholds a set: a THRESHOLDS word of three i64s): an
    image with a uint2 hidden layer loads through the link and runs bit-exact in the ISA
    simulator's cycles."""
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, act_bits=2, out_bits=2, weight_depth=16,
                                    thr_depth=8), act_depth=32, res_depth=8, prog_depth=16)
    rng = np.random.default_rng(5)
    uint2 = ActType("unsigned", 2)
    layers = [Dense.from_values("fc0", 2 * rng.integers(0, 2, (8, 20)) - 1, "binary",
                                thresholds=np.sort(rng.integers(-6, 7, (8, 3)), axis=1),
                                out_act=uint2),
              Dense.from_values("fc1", 2 * rng.integers(0, 2, (5, 8)) - 1, "binary")]
    model = IntModel((20,), ActType("bipolar"), layers, meta={})
    compiled = compile_model(model, cfg)
    dev = Device(SimTransport(HostLink(cfg, idle_timeout=IDLE)), timeout=1.0, run_timeout=2.0)
    loaded = dev.load_image(image_bytes(compiled))
    x = (2 * rng.integers(0, 2, (3, 20)) - 1).astype(np.int8)
    acc, _, cycles = dev.infer(loaded, x)
    want = reference.run(model, x)
    np.testing.assert_array_equal(acc, want)
    assert cycles == simulate(compiled, x)[1]


def test_hardware_refuses_bad_images(link, case):
    transport, dev = link
    model, compiled, image = case
    for name, (bad, code) in _corruptions(image).items():
        with pytest.raises(DeviceError) as info:
            dev.load_image(bad, check=False)        # the driver's own check bypassed
        assert info.value.code == code, name
        st_ = dev.status()
        assert (st_.error, st_.image_valid) == (code, False), name
        with pytest.raises(DeviceError, match="START without a valid model image"):
            dev.start()
    # A good image afterwards works.
    dev.load_image(image)
    x = (2 * np.random.default_rng(6).integers(0, 2, (1, 20)) - 1).astype(np.int8)
    np.testing.assert_array_equal(dev.run_batch(compiled, x)[0], reference.run(model, x))


def test_hardware_ignores_a_section_entrys_reserved_field(link, case):
    """The u16 after a section's type is reserved: the driver's parser ignores it, so does
    the hardware (only the type's high bits must be zero, see "section type" above)."""
    transport, dev = link
    model, compiled, image = case
    odd = _patch(image, HEADER.size + 2, b"\x34\x12")
    loaded = dev.load_image(odd)
    assert dev.status().image_valid
    x = (2 * np.random.default_rng(8).integers(0, 2, (2, 20)) - 1).astype(np.int8)
    np.testing.assert_array_equal(dev.infer(loaded, x)[0], reference.run(model, x))


# ---------------------------------------------------------------- link robustness (raw frames)

def _exchange(transport, frame, timeout=0.5):
    transport.write(frame)
    dec = FrameDecoder()
    while True:
        data = transport.read(dec.needed(), timeout)
        assert data, "no response"
        frames = dec.feed(data)
        if frames:
            assert frames[0].ok
            return frames[0]


def _nak(frame):
    assert frame.is_nak, frame
    return Nak(frame.payload[0])


def _status_ok(transport, seq=77):
    reply = _exchange(transport, encode_request(Cmd.STATUS, seq))
    assert (reply.cmd, reply.seq) == (Cmd.STATUS | protocol.RESPONSE_FLAG, seq)
    return Status.decode(reply.payload)


def test_link_recovers_from_damaged_frames(link):
    transport, _ = link
    good = encode_request(Cmd.STATUS, 5)
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    assert _nak(_exchange(transport, bad_crc)) == Nak.CRC
    _status_ok(transport)
    # Truncated frame: the header and part of the payload, then silence.
    transport.write(encode_request(Cmd.INPUT, 6, bytes(12))[:10])
    assert _nak(_exchange(transport, b"")) == Nak.TIMEOUT
    _status_ok(transport)
    # Garbage between frames (no start byte in it) is skipped.
    transport.write(bytes(range(0x10, 0x60)))
    _status_ok(transport)
    # A truncated header is dropped silently after the idle timeout.
    transport.write(good[:3])
    transport.run(2 * IDLE)
    _status_ok(transport)
    # Length, command, range checks.
    assert _nak(_exchange(transport, encode_request(Cmd.STATUS, 8, b"x"))) == Nak.LENGTH
    assert _nak(_exchange(transport, encode_request(0x42, 9))) == Nak.COMMAND
    assert _nak(_exchange(transport, encode_request(Cmd.RESULTS, 10, struct.pack("<HH", 6, 3)))) \
        == Nak.RANGE
    assert _nak(_exchange(transport, encode_request(Cmd.INPUT, 11, struct.pack("<I", 31) + bytes(4)))) \
        == Nak.RANGE
    assert _nak(_exchange(transport, encode_request(Cmd.INPUT, 12, bytes(5)))) == Nak.LENGTH
    long = encode_request(Cmd.IMAGE, 13, bytes(MAX_PAYLOAD + 1))
    assert _nak(_exchange(transport, long[:5])) == Nak.LENGTH
    transport.write(long[5:])
    transport.run(2 * IDLE)
    _status_ok(transport)


def test_image_chunks_are_idempotent(link, case):
    transport, _ = link
    model, compiled, image = case
    chunk = 200
    offsets = list(range(0, len(image), chunk))
    order = offsets[:2] + [offsets[1], offsets[0]] + offsets[2:]     # retried chunks
    for k, off in enumerate(order):
        reply = _exchange(transport, encode_request(Cmd.IMAGE, k, struct.pack("<I", off) +
                                                    image[off:off + chunk]))
        assert reply.cmd == Cmd.IMAGE | protocol.RESPONSE_FLAG
        if k == 3:          # offset 0 starts the image again
            order[4:4] = offsets[1:2]
    st_ = _status_ok(transport)
    assert st_.image_valid and st_.image_bytes == len(image)
    # A chunk that starts before the bytes received is acknowledged and not applied.
    late = encode_request(Cmd.IMAGE, 98, struct.pack("<I", len(image) - 10) + bytes(20))
    assert Status.decode(_exchange(transport, late).payload) == st_
    gap = encode_request(Cmd.IMAGE, 99, struct.pack("<I", len(image) + 10) + b"x")
    assert _nak(_exchange(transport, gap)) == Nak.OFFSET
    # A retried START (same sequence number) is answered without running again.
    dev = Device(transport)
    words = [1, 2]
    dev.write_input(words, CFG.simd)
    first = _exchange(transport, encode_request(Cmd.START, 200))
    again = _exchange(transport, encode_request(Cmd.START, 200))
    assert first.payload == again.payload


def test_driver_retries_and_gives_up(link):
    transport, _ = link

    class Flaky:
        """Corrupts the first copy of every request; garbage with start bytes in between."""
        def __init__(self):
            self.count = 0

        def write(self, data):
            self.count += 1
            if self.count % 2:
                transport.write(b"\xa5\x13" + data[:-1] + bytes([data[-1] ^ 0xFF]))
            else:
                transport.write(data)

        def read(self, n, timeout):
            return transport.read(n, timeout)

    flaky = Flaky()
    dev = Device(flaky, timeout=0.5)
    assert dev.status().hw_hash == CFG.hash and dev.resent >= 1

    class Dead:
        def write(self, data):
            pass

        def read(self, n, timeout):
            return b""

    with pytest.raises(DeviceError, match=r"^STATUS failed after 3 tries \(no response"):
        Device(Dead(), retries=3).status()


# ---------------------------------------------------------------- docs

def test_docs_tables_match_the_protocol():
    text = (Path(__file__).resolve().parents[2] / "docs" / "host.md").read_text()
    for table in protocol.markdown_tables().values():
        assert table in text, "docs/host.md is stale: paste protocol.markdown_tables() in"


def test_cli_run_reports_a_missing_port(tmp_path, capsys, case):
    from tritium.sw.cli.main import main
    from tritium.sw.compiler.image import write_images

    _, compiled, _ = case
    write_images(compiled, tmp_path)
    assert main(["run", "--port", str(tmp_path / "no-such-port"), str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"tritium: error: cannot open serial port .*", err) and "\n" not in err


def test_cli_run_on_a_simulated_board(tmp_path, monkeypatch, capsys):
    """``tritium run`` end to end, its serial port replaced by a simulated HostLink."""
    import json

    from tritium.sw.cli.main import main
    from tritium.sw.compiler.image import write_images
    from tritium.sw.model.ir import save_model
    from tritium.sw.run import driver

    rng = np.random.default_rng(3)
    bip = ActType("bipolar")
    model = IntModel((8, 8, 1), bip, [
        Dense.from_values("fc0", 2 * rng.integers(0, 2, (8, 64)) - 1, "binary",
                          thresholds=rng.integers(-4, 5, (8, 1)), out_act=bip),
        Dense.from_values("fc1", 2 * rng.integers(0, 2, (10, 8)) - 1, "binary")],
        meta={"input_quant": {"kind": "binarise", "threshold": 100}})
    save_model(model, tmp_path / "m.npz")
    write_images(compile_model(model, CFG), tmp_path / "build")
    monkeypatch.setattr(driver, "SerialTransport",
                        lambda port, baud: SimTransport(HostLink(CFG, idle_timeout=IDLE)))
    code = main(["run", "--port", "sim", str(tmp_path / "build"), "--model",
                 str(tmp_path / "m.npz"), "--dataset", "digits", "--count", "3", "--json", "-q"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["images"] == 3 and result["mismatches"] == 0
    assert result["cycles_per_image"] > 0 and result["images_per_s"] > 0


def test_image_valid_at_reset():
    """A bitstream with a model in its block RAMs boots valid: START works at once."""
    dev = Device(SimTransport(HostLink(CFG, image_valid_at_reset=True, idle_timeout=IDLE)))
    st_ = dev.status()
    assert st_.image_valid and st_.error == Err.NONE and st_.image_bytes == 0
    assert Device(SimTransport(HostLink(CFG, idle_timeout=IDLE))).status().error == Err.NO_IMAGE
