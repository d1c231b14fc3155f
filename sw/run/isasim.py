"""The ISA-level simulator: runs a compiled program bit-exactly and counts cycles.

It models what the accelerator holds (two activation buffers, the weight banks,
the threshold memories, the result memory, the configuration registers) and
executes instruction words one by one. A ``RUN`` generates the same input
words and PE commands as the controller (docs/accelerator.md, the PE contract
of docs/hardware.md) and applies the PE arithmetic to them: lane operation,
popcount, Horner shift, negation, doubling and the shared input counter. It is
vectorised over output pixels and PEs, and loops over the beats of one
accumulation (weight planes x bit planes x kernel positions x channel words), so whole networks
run in well under a second per image.

Cycles follow the timing of docs/accelerator.md
(:class:`tritium.hw.accel_config.Timeline`): the start cycles, one per
instruction, ``beats + run_drain`` per ``RUN``, and the cycles the controller
waits for the ``LOAD_W`` copy engine (which copies weight-store words into the
banks while RUNs execute); the RTL's cycle counter agrees exactly
(tests/hw/test_accel.py).
"""

from dataclasses import dataclass, field

import numpy as np

from ...hw import isa
from ...hw.accel_config import Timeline
from ...hw.config import OP_AND_S, OP_MXNOR, OP_XNOR
from ...hw.contract import beat_commands
from ...hw.errors import TritiumError
from ...hw.isa import Opcode
from ..model.layout import lanes_to_int
from .loop import Backend, run_batches


class SimError(TritiumError):
    """The program did something the hardware would refuse (reported as an error status)."""


@dataclass
class LayerStats:
    """What one RUN did."""

    index: int
    beats: int
    cycles: int
    useful_lane_ops: int
    lanes: int

    @property
    def utilization(self):
        return self.useful_lane_ops / (self.lanes * self.cycles) if self.cycles else 0.0


@dataclass
class Registers:
    """The configuration registers set by CFG_* instructions."""

    values: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def _limbs(simd):
    return -(-simd // 64)


def ints_to_limbs(values, simd):
    """Python ints (N,) of S bits -> uint64 limbs (N, L)."""
    n_limbs = _limbs(simd)
    out = np.zeros((len(values), n_limbs), np.uint64)
    for i, v in enumerate(values):
        v = int(v)
        for k in range(n_limbs):
            out[i, k] = (v >> (64 * k)) & 0xFFFF_FFFF_FFFF_FFFF
    return out


def limbs_to_ints(limbs):
    return [sum(int(w) << (64 * k) for k, w in enumerate(row)) for row in limbs]


@dataclass
class Memories:
    """One run's memory images as the simulator holds them (:meth:`IsaSim.memories`):
    made once per image, loaded as often as the run comes (:meth:`IsaSim.apply`)."""

    program: list
    w_sign: np.ndarray | None       # (P, weight_depth, limbs); LOAD_W writes a copy of it;
    w_mask: np.ndarray | None       # None: the banks keep their words
    thresholds: np.ndarray | None   # (P, thr_depth, n_thresholds); None: kept
    s_sign: np.ndarray | None       # (store_depth, limbs); None: the store keeps its words
    s_mask: np.ndarray | None


class IsaSim:
    """A simulated accelerator with a loaded program and memory images.

    Parameters
    ----------
    compiled : tritium.sw.compiler.Compiled
        Program, weight-bank and threshold images, and the configuration.
    """

    def __init__(self, compiled):
        self.compiled = compiled
        self.cfg = cfg = compiled.config
        core = cfg.core
        self.simd, self.pe = core.simd, core.pe
        self.n_limbs = _limbs(core.simd)
        self.lane_mask = ints_to_limbs([(1 << core.simd) - 1], core.simd)[0]
        self.s_sign = np.zeros((cfg.store_depth, self.n_limbs), np.uint64)
        self.s_mask = np.zeros((cfg.store_depth, self.n_limbs), np.uint64)
        self.load(compiled.program, compiled.weight_banks, compiled.threshold_banks,
                  compiled.store_words)
        self.act = np.zeros((2, cfg.act_depth, self.n_limbs), np.uint64)
        self.results = np.zeros((cfg.res_depth, core.pe), np.int64)
        self.regs = Registers()
        self.cycles = 0
        self.layers = []
        self._timeline = None
        self._layer_runs = []       # (beats, cycles) of the RUNs of the layer being executed

    # -- host side --------------------------------------------------------

    def load(self, program, weight_banks, threshold_banks, store_words=None):
        """Write the program memory, the weight banks and the threshold memories (a model
        image, or one segment's: banks or thresholds None are kept) and, given a
        weight-store image (not None or empty), the weight store (the image from word 0,
        zeros after); the activation buffers (and otherwise the store) keep their
        contents."""
        self.apply(self.memories(program, weight_banks, threshold_banks, store_words))

    def memories(self, program, weight_banks, threshold_banks, store_words=None):
        """The images of :meth:`load` as the simulator's arrays (:class:`Memories`)."""
        core = self.cfg.core
        sign_bits = (1 << core.simd) - 1
        s_sign = s_mask = None
        if store_words:
            store = list(store_words)
            if len(store) > self.cfg.store_depth:
                raise SimError(f"{len(store)} weight-store words, the store holds "
                               f"{self.cfg.store_depth}")
            store += [0] * (self.cfg.store_depth - len(store))
            s_sign = ints_to_limbs([w & sign_bits for w in store], core.simd)
            s_mask = ints_to_limbs([w >> core.simd for w in store], core.simd)
        w_sign = w_mask = None
        if weight_banks is not None:
            flat = [w for bank in weight_banks for w in bank]
            shape = (core.pe, core.weight_depth, self.n_limbs)
            w_sign = ints_to_limbs([w & sign_bits for w in flat], core.simd).reshape(shape)
            w_mask = ints_to_limbs([w >> core.simd for w in flat], core.simd).reshape(shape)
        thresholds = None if threshold_banks is None else np.array(threshold_banks, np.int64)
        return Memories(list(program), w_sign, w_mask, thresholds, s_sign, s_mask)

    def apply(self, mem):
        """Load :class:`Memories` (the banks as a copy: LOAD_W writes into them)."""
        self.program = mem.program
        if mem.w_sign is not None:
            self.w_sign, self.w_mask = mem.w_sign.copy(), mem.w_mask.copy()
        if mem.thresholds is not None:
            self.thresholds = mem.thresholds
        if mem.s_sign is not None:
            self.s_sign, self.s_mask = mem.s_sign, mem.s_mask

    def write_activations(self, buf, words, base=0):
        if base + len(words) > self.cfg.act_depth:
            raise SimError(f"{len(words)} words do not fit activation buffer {buf} at {base}")
        self.act[buf, base:base + len(words)] = ints_to_limbs(words, self.simd)

    def run_program(self, max_instructions=1 << 20, first=True):
        """Execute from address 0 to END; returns the cycle count. ``first``: the batch's
        first program run (a later segment's run adds to :attr:`layers`)."""
        if first:
            self.layers, self._layer_runs = [], []
        pc = 0
        self._timeline = t = Timeline(self.cfg)
        for _ in range(max_instructions):
            if pc >= len(self.program):
                raise SimError(f"program counter {pc} ran past the program without END")
            opcode, args = isa.decode(self.program[pc])
            pc += 1
            if opcode == Opcode.END:
                t.end()
                self.cycles = t.cycles
                return self.cycles
            if opcode == Opcode.RUN:
                self._run(args["wait_w"])
            elif opcode == Opcode.LOAD_W and self.cfg.store_depth:
                self._load_w(**args)
                t.load(args["count"])
            elif opcode in (Opcode.CFG_IN, Opcode.CFG_WIN, Opcode.CFG_OUT, Opcode.CFG_MEM):
                self.regs.values.update(args)
                t.step()
            elif opcode == Opcode.SYNC:
                t.step()  # the host releases the core at once in simulation
            else:
                raise SimError(f"instruction {opcode.name} is not implemented by this "
                               "accelerator")
            self.cycles = t.cycles
        raise SimError(f"no END after {max_instructions} instructions")

    def _load_w(self, addr, count, src):
        """The copy engine: bank p's words addr.. from store words src + p * count .."""
        pe, depth = self.pe, self.cfg.core.weight_depth
        if src + pe * count > self.cfg.store_depth:
            raise SimError("a LOAD_W reads past the end of the weight store")
        if addr + count > depth:
            raise SimError("a LOAD_W writes past the end of the weight banks")
        for p in range(pe):
            lo = src + p * count
            self.w_sign[p, addr:addr + count] = self.s_sign[lo:lo + count]
            self.w_mask[p, addr:addr + count] = self.s_mask[lo:lo + count]

    # -- RUN --------------------------------------------------------------

    def _commands(self, r):
        """The beat sequence of one accumulation (:func:`tritium.hw.contract.beat_commands`)."""
        try:
            beats = beat_commands(bool(r.in_bipolar), self.cfg.core.ternary, bool(r.ternary),
                                  bool(r.in_signed), r.in_planes, r.kh * r.kw * r.in_cw,
                                  self._weight_planes(r))
        except TritiumError as e:
            raise SimError(str(e)) from None
        return [(plane or 0, j, w_word, f["op"], f["shl"], f["neg"], f["dbl"], f["count"])
                for plane, j, w_word, f in beats]

    def _weight_planes(self, r):
        """Weight planes of the RUN (CFG_MEM.extra_w_planes + 1)."""
        if r.extra_w_planes >= self.cfg.core.weight_planes:
            raise SimError(f"extra_w_planes = {r.extra_w_planes} needs a core with more weight "
                           f"planes (this one runs {self.cfg.core.weight_planes})")
        return r.extra_w_planes + 1

    def _images(self, r):
        """Images the RUN loops over (CFG_IN.extra_images + 1)."""
        if r.extra_images and self.cfg.max_images == 1:
            raise SimError("extra_images needs an accelerator with an image loop (max_images > 1)")
        return r.extra_images + 1

    def _gather_inputs(self, r):
        """Input words of every output position: (NP, planes, words_per_row, L); the
        positions of image i follow image i-1's, whose input rows its rows follow."""
        pool = r.pool
        rows = np.arange(self._images(r) * r.out_h)
        oy, ox, py, px = np.meshgrid(rows % r.out_h, np.arange(r.out_w), np.arange(pool),
                                     np.arange(pool), indexing="ij")
        first_row = np.broadcast_to((rows // r.out_h * r.in_h)[:, None, None, None], oy.shape)
        cy = (oy * pool + py).reshape(-1)
        cx = (ox * pool + px).reshape(-1)
        ky, kx = np.meshgrid(np.arange(r.kh), np.arange(r.kw), indexing="ij")
        iy = cy[:, None] * r.sh + ky.reshape(-1)[None, :] - r.ph          # (NP, kh*kw)
        ix = cx[:, None] * r.sw + kx.reshape(-1)[None, :] - r.pw
        inside = (iy >= 0) & (iy < r.in_h) & (ix >= 0) & (ix < r.in_w)
        planes, cw = r.in_planes, r.in_cw
        pixel = np.where(inside, (first_row.reshape(-1)[:, None] + iy) * r.in_w + ix, 0)
        b = np.arange(planes)[None, :, None, None]
        c = np.arange(cw)[None, None, None, :]
        addr = r.in_base + ((pixel[:, None, :, None] * planes + b) * cw + c)   # (NP, K, kh*kw, CW)
        if addr.max(initial=0) >= self.cfg.act_depth:
            raise SimError("a RUN reads past the end of its activation buffer")
        words = self.act[r.in_buf][addr]                                         # (..., L)
        pad = self._pad_words(r)                                                 # (K, CW, L)
        pad_b = np.broadcast_to(pad[None, :, None, :, :], words.shape)
        words = np.where(inside[:, None, :, None, None], words, pad_b)
        return words.reshape(words.shape[0], planes, r.kh * r.kw * cw, self.n_limbs)

    def _pad_words(self, r):
        full = self.lane_mask
        last = ints_to_limbs([(1 << r.last_lanes) - 1], self.simd)[0]
        pad = np.zeros((r.in_planes, r.in_cw, self.n_limbs), np.uint64)
        for b in range(r.in_planes):
            if (r.pad_code >> b) & 1:
                pad[b, :] = full
                pad[b, -1] = last
        return pad

    def _run(self, wait_w=0):
        r, core = self.regs, self.cfg.core
        pe, tiles = core.pe, r.tiles
        wpr = r.kh * r.kw * r.in_cw * self._weight_planes(r)        # weight words per row
        x = self._gather_inputs(r)                                   # (NP, K, words per plane, L)
        addr = r.w_base + np.arange(tiles)[:, None] * wpr + np.arange(wpr)[None, :]   # (T, WPR)
        if addr.max(initial=0) >= core.weight_depth:
            raise SimError("a RUN reads past the end of the weight banks")
        sign = self.w_sign[:, addr].transpose(1, 0, 2, 3)             # (T, P, WPR, L)
        mask = self.w_mask[:, addr].transpose(1, 0, 2, 3)
        n_pos = x.shape[0]
        acc = np.zeros((n_pos, tiles, pe), np.int64)
        shared = np.zeros((n_pos, 1, 1), np.int64)
        beats = self._commands(r)
        for plane, j, w_word, op, shl, neg, dbl, count in beats:
            xw = x[:, plane, j][:, None, None, :]                   # (NP, 1, 1, L)
            s, m = sign[None, :, :, w_word], mask[None, :, :, w_word]   # (1, T, P, L)
            if op == OP_XNOR:
                lane = ~(xw ^ s) & self.lane_mask
            elif op == OP_MXNOR:
                lane = m & ~(xw ^ s)
            elif op == OP_AND_S:
                lane = xw & s
            else:
                lane = xw & m
            pc = np.bitwise_count(lane).sum(axis=-1, dtype=np.int64) << dbl
            if shl:
                acc <<= 1
                shared <<= 1
            acc += -pc if neg else pc
            if count:
                xc = np.bitwise_count(xw).sum(axis=-1, dtype=np.int64)
                shared += -xc if neg else xc
        d = acc - shared                                             # (NP, T, P)
        if r.out_bits > len(beats):
            raise SimError(f"a RUN with {r.out_bits}-bit outputs needs at least {r.out_bits} beats "
                           f"per result (this one takes {len(beats)}): the output path writes a "
                           f"word's planes in consecutive cycles")
        n_beats = len(beats) * n_pos * tiles
        self._layer_runs.append((n_beats, self._timeline.run(n_beats, wait_w, r.out_bits)))
        self.cycles = self._timeline.cycles
        # A layer's RUNs (several when its weights stream) make one LayerStats.
        layers = self.compiled.io["layers"]
        info = layers[len(self.layers)] if len(self.layers) < len(layers) else {}
        if len(self._layer_runs) >= info.get("runs", 1):
            b, c = (sum(v) for v in zip(*self._layer_runs))
            self.layers.append(LayerStats(len(self.layers), b, c, info.get("useful_lane_ops", 0),
                                          core.lanes))
            self._layer_runs = []
        if r.out_bits == 0:
            self._write_results(r, d)
        else:
            self._write_activations(r, d)

    def _write_results(self, r, d):
        if r.pool != 1:
            raise SimError("raw results cannot be pooled")
        entries = d.reshape(-1, self.pe)
        base = r.out_base
        if base + len(entries) > self.cfg.res_depth:
            raise SimError("raw results overflow the result memory")
        lo, hi = -(1 << (self.cfg.core.acc_bits - 1)), (1 << (self.cfg.core.acc_bits - 1)) - 1
        if entries.size and (entries.min() < lo or entries.max() > hi):
            raise SimError("an accumulator overflowed acc_bits")
        self.results[base:base + len(entries)] = entries

    def _write_activations(self, r, d):
        """Pack the outputs: word ``w`` of plane ``b`` of pixel ``x`` goes to
        ``out_base + (x * out_bits + b) * out_cw + w``. The neuron folds start at
        P-lane slot ``out_slot`` of the first word; lanes below it are kept,
        lanes past the last fold are 0 up to the end of its word."""
        pe, tiles, s = self.pe, r.tiles, self.simd
        slot = r.out_slot
        if slot and not self.cfg.store_depth:
            raise SimError("out_slot needs a core with a weight store")
        t = self.thresholds[:, r.t_base:r.t_base + tiles]            # (P, T, n_thr)
        t = t.transpose(1, 0, 2)[None]                                # (1, T, P, n_thr)
        act = (d[..., None] >= t).sum(axis=-1)                        # (NP, T, P)
        pool = r.pool
        out_h = self._images(r) * r.out_h                              # the images' rows
        act = act.reshape(out_h, r.out_w, pool * pool, tiles * pe).max(axis=2)
        n_words = -(-(slot + tiles) * pe // s)                        # words written per plane
        pixels = out_h * r.out_w
        addr = (r.out_base + (np.arange(pixels)[:, None, None] * r.out_bits
                              + np.arange(r.out_bits)[None, :, None]) * r.out_cw
                + np.arange(n_words)[None, None, :]).reshape(-1)
        if addr.max(initial=0) >= self.cfg.act_depth:
            raise SimError("a RUN writes past the end of its activation buffer")
        old = np.array(limbs_to_ints(self.act[r.out_buf, addr]), object)
        keep = (1 << (slot * pe)) - 1                                 # lanes of earlier folds
        values = np.zeros((out_h, r.out_w, n_words * s), np.int64)
        values[..., slot * pe:(slot + tiles) * pe] = act
        bits = np.stack([(values >> b) & 1 for b in range(r.out_bits)], axis=2)   # (OH, OW, B, lanes)
        ints = lanes_to_int(bits.reshape(out_h, r.out_w, r.out_bits, n_words, s)).reshape(-1)
        first = (np.arange(len(ints)) % n_words) == 0
        ints = np.where(first, ints | (old & keep), ints)
        self.act[r.out_buf, addr] = ints_to_limbs(list(ints), s)


class IsaBackend(Backend):
    """The ISA simulator as a :class:`~tritium.sw.run.loop.Backend`: each segment's images
    are converted once and applied before each of its runs; :attr:`sim` keeps the layer
    statistics of the last batch's runs."""

    def __init__(self, compiled):
        self.sim = sim = IsaSim(compiled)
        runs = compiled.runs()
        self.segment = 0
        self.images = [sim.memories(run.program, run.weight_banks, run.threshold_banks,
                                    compiled.segment(k).store_words)  # run 0's: the model's store
                       for k, run in enumerate(runs)] if len(runs) > 1 else []

    def load_segment(self, k):
        self.segment = k
        self.sim.apply(self.images[k])

    def write_input(self, words):
        self.sim.write_activations(0, words)

    def start(self):
        return self.sim.run_program(first=self.segment == 0)

    def read_results(self, base, count):
        return self.sim.results[base:base + count].copy()


def simulate(compiled, values):
    """Run network inputs; returns (accumulators, cycles per batch, layer stats).

    ``accumulators`` are the reference accumulators (``D - K``) of the last layer,
    shaped like :func:`tritium.sw.model.reference.run`'s output. The cycles of a batch are
    those of its program run, or the sum over its segments' runs; the layer stats
    are those of the last batch's runs.
    """
    backend = IsaBackend(compiled)
    result = run_batches(compiled, values, backend)
    return result.accumulators, result.cycles, backend.sim.layers
