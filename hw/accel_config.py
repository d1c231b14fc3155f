"""Configuration of the whole accelerator: the PE-array core plus its memories.

:class:`AccelConfig` wraps the core's :class:`~tritium.hw.config.HwConfig`
and adds the sizes of the memories around it (activation buffers, program,
results). Its hash (:attr:`AccelConfig.hash`) covers both; compiled model
images record it and the driver and the hardware refuse an image whose hash
differs. The drain latency of a ``RUN`` (:meth:`AccelConfig.run_drain`) is
defined here once: the controller is built to it and the ISA-level simulator
counts it (docs/accelerator.md, "Timing").
"""

from dataclasses import dataclass, field

from .config import ConfigError, HwConfig, config_from_dict, config_hash, versioned_fields
from .isa import INSTRUCTIONS, Opcode

#: Bumped whenever a field's meaning or the generated accelerator changes.
ACCEL_CONFIG_VERSION = 2

#: Pipeline stages of the controller around the core, one cycle each: before
#: the core, the address generator's five registers (window position, input
#: coordinates, padding test and pixel index, pixel plane, word: one multiply each)
#: and the activation-buffer read; after it, the register of the core's results
#: and the register that ends a RUN once its last result is written
#: (docs/accelerator.md, "Timing").
ADDRESS_STAGES = 7
OUTPUT_STAGES = 2
#: Cycles before the first instruction executes, counted in every run (the cycle counter
#: starts at 1): the start pulse (the fetch of instruction 0) and the cycle that moves it
#: into the instruction register (the fetch of instruction 1).
START_CYCLES = 2
#: Cycles the weight copy engine stays busy after the P x count words of a
#: LOAD_W have been read from the store: the store's read register, then the
#: bank write of the last word.
LOAD_STAGES = 2


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of a generated accelerator.

    Parameters
    ----------
    core : HwConfig
        The PE array and threshold unit.
    act_depth : int
        Words of S bits in each of the two activation buffers.
    prog_depth : int
        Instructions the program memory holds.
    res_depth : int
        Entries (P accumulators each) of the result memory.
    store_depth : int
        Words (``weight_width`` bits each) of the on-chip weight store that
        ``LOAD_W`` copies into the weight banks; 0: no store (every weight
        lives in the banks). It has no initial contents (the host fills it),
        so synthesis may map it to single-port RAM (iCE40 SPRAM).
    act_reg : bool
        A register right after the activation buffers' read port, before the
        input word's selection (one more cycle per RUN): on ECP5 boards the
        block RAMs' own output register (boards/bram_outreg.py), so no logic
        follows their 5.8 ns clock-to-output time in one cycle.
    max_images : int
        Images one RUN can loop over (``CFG_IN.extra_images`` + 1; 1: no image
        loop). With more, convolutional networks run in batches: each layer's
        RUN goes through every image of the batch, so its drain latency is paid
        once per batch rather than once per image (docs/accelerator.md, "Batches").
    """

    core: HwConfig = field(default_factory=HwConfig)
    act_depth: int = 1024
    prog_depth: int = 128
    res_depth: int = 16
    store_depth: int = 0
    act_reg: bool = False
    max_images: int = 1

    def __post_init__(self):
        if not isinstance(self.core, HwConfig):
            raise ConfigError("AccelConfig.core must be a HwConfig")
        for name in ("act_depth", "prog_depth", "res_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 1 << 20:
                raise ConfigError(f"{name} must be an integer in 2..{1 << 20}, got {value!r}")
        if not isinstance(self.act_reg, bool):
            raise ConfigError(f"act_reg must be true or false, got {self.act_reg!r}")
        mi = self.max_images
        if not isinstance(mi, int) or isinstance(mi, bool) or not 1 <= mi <= 256:
            raise ConfigError(f"max_images must be an integer in 1..256 (1: no image loop), "
                              f"got {mi!r}")
        sd = self.store_depth
        if not isinstance(sd, int) or isinstance(sd, bool) or not (sd == 0 or 2 <= sd <= 1 << 24):
            raise ConfigError(f"store_depth must be 0 (no weight store) or an integer in "
                              f"2..{1 << 24}, got {sd!r}")

    # -- derived ------------------------------------------------------------

    @property
    def pe(self):
        return self.core.pe

    @property
    def simd(self):
        return self.core.simd

    def field_limit(self, opcode, name):
        """The largest value of field ``name`` of instruction ``opcode`` this accelerator runs.

        The ISA's limit, or less where the hardware sizes a register by its memories
        rather than by the field's width (docs/accelerator.md, "Register widths"): image
        dimensions by the activation buffers and result memory, a weight row's kernel
        and channel words and a RUN's neuron folds by the weight banks, bit planes by
        ``act_bits``, weight planes by the core's kinds, ``last_lanes`` by S, a ``LOAD_W`` copy by a bank. The hardware's
        registers hold exactly these values; the compiler refuses a program past them
        (:func:`tritium.sw.compiler.emit`). Addresses and bases need no limit: the
        hardware keeps their low bits, which is all a memory port reads.
        """
        opcode = Opcode(opcode)
        field = {f.name: f for f in INSTRUCTIONS[opcode].fields}[name]
        core, act, dims = self.core, self.act_depth, max(self.act_depth, self.res_depth)
        bounds = {
            Opcode.CFG_IN: {"in_h": act, "in_w": act, "in_cw": core.weight_depth,
                            "in_planes": core.act_bits, "extra_images": self.max_images - 1},
            Opcode.CFG_WIN: {"kh": core.weight_depth, "kw": core.weight_depth,
                             "last_lanes": core.simd},
            Opcode.CFG_OUT: {"out_h": dims, "out_w": dims},
            Opcode.CFG_MEM: {"tiles": core.weight_depth,
                             "extra_w_planes": core.weight_planes - 1},
            Opcode.LOAD_W: {"count": core.weight_depth},
        }.get(opcode, {})
        return min(field.largest, bounds.get(name, field.largest))

    @property
    def address_stages(self):
        """Cycles from a beat's loop counters to the core's input: :data:`ADDRESS_STAGES`,
        one more with ``act_reg``."""
        return ADDRESS_STAGES + int(self.act_reg)

    def run_drain(self, out_bits=1):
        """Cycles from a RUN's last beat to its last write (see docs/accelerator.md): with
        k-bit outputs (``out_bits`` > 1) the last word's planes 1 .. out_bits - 1 follow its
        plane 0, one cycle each."""
        return self.address_stages + self.core.latency + OUTPUT_STAGES + max(0, out_bits - 1)

    @property
    def res_latency(self):
        """Cycles from a new result address (``res_addr``, and ``res_sel``) to its read data
        (``res_data``; with a chain also ``res_word``): the result memory's read register,
        or in the chain (hw/chain.py) the address passing slice by slice and the selected
        accumulator back along the slices."""
        return self.core.pe + 2 if self.core.chain else 1

    def load_cycles(self, count):
        """Cycles the weight copy engine is busy after a LOAD_W of ``count`` words per bank
        issues: one store word per cycle, then :data:`LOAD_STAGES`."""
        return self.core.pe * count + LOAD_STAGES

    # -- canonical form and hash -------------------------------------------

    def canonical(self):
        d = {"core": self.core.canonical(), "act_depth": self.act_depth,
             "prog_depth": self.prog_depth, "res_depth": self.res_depth,
             "store_depth": self.store_depth, "accel_config_version": ACCEL_CONFIG_VERSION}
        if self.act_reg:            # added later: configurations without it keep their hash
            d["act_reg"] = True
        if self.max_images > 1:     # likewise
            d["max_images"] = self.max_images
        return d

    @property
    def hash(self):
        """16 hex digits of SHA-256 over the canonical JSON (as :func:`config_hash`)."""
        return config_hash(self.canonical())

    def describe(self):
        store = f", weight store {self.store_depth} words" if self.store_depth else ""
        images = f", up to {self.max_images} images a RUN" if self.max_images > 1 else ""
        return (f"{self.core.describe()}; activation buffers 2 x {self.act_depth} words, "
                f"program {self.prog_depth}, results {self.res_depth}{store}{images}")


class Timeline:
    """Cycle accounting of one program run, as the controller executes it.

    The compiler (per-layer figures) and the ISA-level simulator count with
    it; the RTL's cycle counter agrees (tests/hw/test_accel.py). Every
    instruction takes one cycle, a RUN ``beats +`` :meth:`AccelConfig.run_drain` (of its
    ``out_bits``);
    ``LOAD_W`` starts the copy engine for :meth:`AccelConfig.load_cycles` and
    returns at once, but first waits for the previous copy, as do ``END`` and
    a RUN with ``wait_w``.

    Members
    -------
    cycles : int
        Cycles so far (the start cycle included).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.cycles = START_CYCLES
        self._load_done = 0         # first cycle at which the copy engine is idle
        self._waited = 0            # cycles waited for copies since the last RUN

    def _wait_for_load(self):
        if self.cycles < self._load_done:
            self._waited += self._load_done - self.cycles
            self.cycles = self._load_done

    def step(self):
        """A one-cycle instruction (CFG_*, SYNC)."""
        self.cycles += 1

    def load(self, count):
        """LOAD_W of ``count`` words per bank."""
        self._wait_for_load()
        self._load_done = self.cycles + self.cfg.load_cycles(count)
        self.cycles += 1

    def run(self, beats, wait_w=0, out_bits=1):
        """A RUN writing ``out_bits`` planes per output word (0: raw results); returns its
        cycles plus those waited for copies since the last RUN."""
        if wait_w:
            self._wait_for_load()
        own = beats + self.cfg.run_drain(out_bits)
        self.cycles += own
        waited, self._waited = self._waited, 0
        return own + waited

    def end(self):
        self._wait_for_load()
        self.cycles += 1


def accel_config_from_dict(d):
    """An :class:`AccelConfig` from the configuration format (docs/config.md): ``core``
    (with ``pe`` and ``simd``) is required, every other field has its default;
    :meth:`AccelConfig.canonical` output is one such dict. Checked; a missing or
    unknown field is an error that names it."""
    d = versioned_fields(d, "accel_config_version", ACCEL_CONFIG_VERSION,
                         {"core", "act_depth", "prog_depth", "res_depth", "store_depth",
                          "act_reg", "max_images"},
                         "accelerator configuration")
    if "core" not in d:
        raise ConfigError("configuration field core is missing (the PE array; it needs at "
                          "least pe and simd; docs/config.md)")
    core = config_from_dict(d.pop("core"), prefix="core.")
    return AccelConfig(core=core, **d)
