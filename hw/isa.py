"""The tritium instruction set, defined once.

Every instruction is one 64-bit word: a 4-bit opcode in bits 0..3 and the
opcode's arguments in bits 4..63, first field lowest. This module is the single
definition; from it come

* the compiler's encoder (:func:`encode`) and decoder (:func:`decode`),
* the hardware decoder's view (:func:`instruction_layout`, an
  ``amaranth.lib.data`` layout whose ``args`` union has one struct per opcode),
* the ISA-level simulator's decoding,
* docs/isa.md (:func:`markdown`; a test keeps the file equal to it, and
  ``python -m tritium.hw.isa > docs/isa.md`` rewrites it).

The programming model: configuration instructions (``CFG_*``) set registers
that describe one layer; ``RUN`` executes the whole layer as a hardware loop
nest ((images x) output pixels x neuron folds x pooling window x weight planes x
bit planes x kernel x channel words), one input word per cycle, so the PE array stays busy without
an instruction per tile (Gemmini-style CISC loops). ``LOAD_W`` starts the
weight copy engine, which copies words from the on-chip weight store into a
region of the weight banks while the following instructions (a ``RUN`` on the
other region) execute, for models whose weights do not fit the banks;
``LOAD_T`` (thresholds, not implemented yet) is reserved for the same;
``SYNC`` hands control to the host; ``END`` finishes a program. Opcodes 9..15 are reserved: elementwise add and concatenation (binary
ResNet / DenseNet shortcuts) take 9 and 10 in a later version.
"""

from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from .errors import TritiumError

#: Bits in one instruction word.
INSTR_BITS = 64
#: Bits of the opcode field (bits 0 .. OPCODE_BITS-1).
OPCODE_BITS = 4
#: Bits left for an instruction's arguments.
ARG_BITS = INSTR_BITS - OPCODE_BITS
#: Bumped whenever an encoding changes incompatibly; recorded in compiled images. Version 2
#: gained CFG_IN.extra_images in bits that had to be 0 (0 means what those programs meant,
#: and only an accelerator with an image loop, whose configuration hash differs, runs more).
ISA_VERSION = 3


class IsaError(TritiumError):
    """An instruction that cannot be encoded or decoded."""


class Opcode(enum.Enum, shape=OPCODE_BITS):
    END = 0
    CFG_IN = 1
    CFG_WIN = 2
    CFG_OUT = 3
    CFG_MEM = 4
    RUN = 5
    LOAD_W = 6
    LOAD_T = 7
    SYNC = 8


#: Opcodes kept free for later instructions (shortcut connections).
RESERVED_OPCODES = {9: "ADD (elementwise add of two activation tensors)",
                    10: "CONCAT (channel concatenation)"}


@dataclass(frozen=True)
class Field:
    """One argument of an instruction: name, width in bits, meaning."""

    name: str
    bits: int
    doc: str
    minimum: int = 0
    maximum: int | None = None

    @property
    def largest(self):
        """The largest legal value (the field's width allows at least this)."""
        return (1 << self.bits) - 1 if self.maximum is None else self.maximum


@dataclass(frozen=True)
class InstrSpec:
    opcode: Opcode
    doc: str
    fields: tuple


INSTRUCTIONS = {spec.opcode: spec for spec in (
    InstrSpec(Opcode.END, "End of program: waits until the weight copy engine is idle, then "
              "the core stops and reports done.", ()),
    InstrSpec(Opcode.CFG_IN, "Input tensor of the next RUN (NHWC, channels packed per pixel).", (
        Field("in_buf", 1, "activation buffer read (0 or 1)"),
        Field("in_base", 16, "word address of the tensor's first word"),
        Field("in_h", 10, "height in pixels", 1),
        Field("in_w", 10, "width in pixels", 1),
        Field("in_cw", 8, "words per pixel and plane: ceil(C / S)", 1),
        Field("in_planes", 5, "bit planes per value: 1 (bipolar) .. 16", 1, 16),
        Field("in_signed", 1, "1: the MSB plane has weight -2^(K-1)"),
        Field("in_bipolar", 1, "1: bipolar inputs (XNOR lanes); 0: K-bit planes (AND lanes)"),
        Field("extra_images", 8, "images after the first (0: one): the RUN repeats its loop nest "
              "for each image; the input and output tensors hold the images one after another "
              "(image i's rows after image i-1's), each padded on its own (0 on a core without "
              "an image loop)"),
    )),
    InstrSpec(Opcode.CFG_WIN, "Sliding window of the next RUN (a dense layer is a window "
              "covering its whole input).", (
        Field("kh", 6, "kernel height", 1),
        Field("kw", 6, "kernel width", 1),
        Field("sh", 3, "vertical stride", 1),
        Field("sw", 3, "horizontal stride", 1),
        Field("ph", 4, "rows of padding above and below"),
        Field("pw", 4, "columns of padding left and right"),
        Field("pad_code", 16, "bit b: plane b of the pad value's code"),
        Field("last_lanes", 11, "lanes used in a pixel's last channel word (1 .. S)", 1),
    )),
    InstrSpec(Opcode.CFG_OUT, "Output tensor of the next RUN.", (
        Field("out_buf", 1, "activation buffer written (0 or 1); raw results go to the result memory"),
        Field("out_base", 16, "word address of the tensor's first word"),
        Field("out_h", 10, "output height after pooling", 1),
        Field("out_w", 10, "output width after pooling", 1),
        Field("out_cw", 8, "words per output pixel and plane: ceil(M / S)", 1),
        Field("out_bits", 3, "bits per output value: 0 raw accumulators, 1 bipolar, 2..4 unsigned",
              0, 4),
        Field("pool", 3, "max-pool window = stride (1: no pooling)", 1),
        Field("out_slot", 8, "P-lane slot of word out_base where the first neuron fold's outputs "
              "go (a RUN over a range of neuron folds); the lanes below it are kept (0 on a core "
              "without a weight store)"),
    )),
    InstrSpec(Opcode.CFG_MEM, "Weights and thresholds of the next RUN.", (
        Field("w_base", 16, "weight-bank word of the first neuron fold"),
        Field("t_base", 12, "threshold set of the first neuron fold"),
        Field("tiles", 10, "neuron folds: ceil(M / P)", 1),
        Field("ternary", 1, "1: masked weight planes (ternary, pow2-*: mask words are used)"),
        Field("extra_w_planes", 2, "weight planes after the first (0: one, binary or ternary): "
              "each weight row holds its planes one after another, top plane first, and every "
              "input word is sent once per plane, the accumulator doubling at each plane's "
              "first word; with K-bit inputs every (weight plane e, bit plane b) pair goes by "
              "diagonals e + b from the top one down, the accumulator doubling at each "
              "diagonal's first word (0 on a core without multi-plane weight kinds)"),
    )),
    InstrSpec(Opcode.RUN, "Execute the configured layer: every image, output pixel, neuron "
              "fold, pooling-window position, weight plane, bit plane, kernel position and "
              "channel word; one input word per cycle.", (
        Field("wait_w", 1, "1: first wait until the weight copy engine is idle (the RUN reads "
              "words it is loading)"),
    )),
    InstrSpec(Opcode.LOAD_W, "Start the weight copy engine: it copies P x count words from the "
              "weight store into the banks, one word per cycle, while the next instructions "
              "execute. Waits first until the previous copy is done.", (
        Field("addr", 16, "first bank word written"),
        Field("count", 16, "words per bank", 1),
        Field("src", 24, "store word of bank 0's first word; bank p's words follow at "
              "src + p * count"),
    )),
    InstrSpec(Opcode.LOAD_T, "Reserved (not implemented yet): copy threshold sets into every "
              "threshold memory, as LOAD_W does for weights.", (
        Field("addr", 12, "first threshold set written"),
        Field("count", 12, "sets per PE (the host sends P x count sets)", 1),
    )),
    InstrSpec(Opcode.SYNC, "Hand control to the host: raise an event carrying a token, "
              "optionally wait for the host's release.", (
        Field("token", 8, "value reported to the host"),
        Field("wait", 1, "1: stall until the host releases the core"),
    )),
)}


def payload_layout(opcode):
    """The ``amaranth.lib.data`` struct of one opcode's arguments (first field lowest)."""
    spec = INSTRUCTIONS[Opcode(opcode)]
    return data.StructLayout({f.name: unsigned(f.bits) for f in spec.fields})


def instruction_layout():
    """The whole instruction word: ``opcode`` then an ``args`` union of every payload.

    The hardware decoder reads ``insn.args.cfg_in.in_h`` and so on.
    """
    union = data.UnionLayout({op.name.lower(): payload_layout(op) for op in INSTRUCTIONS})
    return data.StructLayout({"opcode": Opcode, "args": union, "_pad": unsigned(ARG_BITS - union.size)})


def encode(opcode, **args):
    """Encode one instruction as an integer; every field must be given and fit."""
    opcode = Opcode(opcode)
    spec = INSTRUCTIONS[opcode]
    names = {f.name for f in spec.fields}
    extra = set(args) - names
    if extra:
        raise IsaError(f"{opcode.name} has no field {sorted(extra)[0]!r}")
    word, shift = opcode.value, OPCODE_BITS
    for f in spec.fields:
        if f.name not in args:
            raise IsaError(f"{opcode.name}: field {f.name!r} is missing")
        value = int(args[f.name])
        if not f.minimum <= value <= f.largest:
            raise IsaError(f"{opcode.name}.{f.name} = {value} does not fit "
                           f"({f.minimum} .. {f.largest})")
        word |= value << shift
        shift += f.bits
    return word


def decode(word):
    """Decode an instruction word into ``(Opcode, {field: value})``."""
    word = int(word)
    if not 0 <= word < (1 << INSTR_BITS):
        raise IsaError(f"instruction word {word:#x} is not {INSTR_BITS} bits")
    code = word & ((1 << OPCODE_BITS) - 1)
    try:
        opcode = Opcode(code)
    except ValueError:
        raise IsaError(f"unknown opcode {code} in instruction {word:#018x}") from None
    args, shift = {}, OPCODE_BITS
    for f in INSTRUCTIONS[opcode].fields:
        args[f.name] = (word >> shift) & ((1 << f.bits) - 1)
        shift += f.bits
    if word >> shift:
        raise IsaError(f"{opcode.name}: unused bits set in instruction {word:#018x}")
    return opcode, args


def disassemble(word):
    """One line of assembly text for an instruction word."""
    opcode, args = decode(word)
    return " ".join([opcode.name] + [f"{k}={v}" for k, v in args.items()])


def markdown():
    """docs/isa.md, generated from :data:`INSTRUCTIONS`."""
    lines = [
        "# The tritium ISA",
        "",
        "<!-- Generated by `python -m tritium.hw.isa > docs/isa.md` from hw/isa.py;"
        " tests/hw/test_isa.py keeps them equal. Do not edit by hand. -->",
        "",
        f"ISA version {ISA_VERSION}. Every instruction is one {INSTR_BITS}-bit word: the opcode in "
        f"bits 0..{OPCODE_BITS - 1}, then the instruction's fields, first field lowest, starting "
        f"at bit {OPCODE_BITS}. Unused high bits are 0 (a decoder refuses a word with stray bits).",
        "",
        "A program configures a layer with `CFG_IN`, `CFG_WIN`, `CFG_OUT` and `CFG_MEM`, then "
        "`RUN` executes it as one hardware loop nest, one input word per cycle. Registers keep "
        "their values until written again.",
        "",
        "| opcode | name | bits used |",
        "|-------:|------|----------:|",
    ]
    for op, spec in INSTRUCTIONS.items():
        lines.append(f"| {op.value} | `{op.name}` | {OPCODE_BITS + sum(f.bits for f in spec.fields)} |")
    for code, what in RESERVED_OPCODES.items():
        lines.append(f"| {code} | reserved | {what} |")
    for op, spec in INSTRUCTIONS.items():
        lines += ["", f"## `{op.name}` (opcode {op.value})", "", spec.doc, ""]
        if not spec.fields:
            lines.append("No fields.")
            continue
        lines += ["| bits | field | width | range | meaning |", "|------|-------|------:|-------|---------|"]
        shift = OPCODE_BITS
        for f in spec.fields:
            lines.append(f"| {shift}..{shift + f.bits - 1} | `{f.name}` | {f.bits} | "
                         f"{f.minimum}..{f.largest} | {f.doc} |")
            shift += f.bits
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
