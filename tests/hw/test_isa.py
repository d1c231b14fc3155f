"""The ISA: one definition; encoder, decoder, hardware layout and docs agree."""

from pathlib import Path

import pytest
from amaranth.lib import data
from hypothesis import given
from hypothesis import strategies as st

from tritium.hw import isa
from tritium.hw.isa import INSTRUCTIONS, IsaError, Opcode, decode, encode

DOC = Path(__file__).resolve().parents[2] / "docs" / "isa.md"


@st.composite
def instructions(draw):
    op = draw(st.sampled_from(list(INSTRUCTIONS)))
    args = {f.name: draw(st.integers(f.minimum, f.largest)) for f in INSTRUCTIONS[op].fields}
    return op, args


@given(instructions())
def test_encode_decode_round_trip(case):
    op, args = case
    word = encode(op, **args)
    assert 0 <= word < 1 << isa.INSTR_BITS
    assert decode(word) == (op, args)


@given(instructions())
def test_hardware_layout_reads_the_same_fields(case):
    op, args = case
    word = encode(op, **args)
    view = data.Const(isa.instruction_layout(), word)
    assert view.opcode == op
    payload = getattr(view.args, op.name.lower())
    for name, value in args.items():
        assert getattr(payload, name) == value


def test_every_instruction_fits_in_one_word():
    for op, spec in INSTRUCTIONS.items():
        assert isa.OPCODE_BITS + sum(f.bits for f in spec.fields) <= isa.INSTR_BITS, op.name
    assert isa.instruction_layout().size == isa.INSTR_BITS


@pytest.mark.parametrize("call, message", [
    (lambda: encode(Opcode.CFG_MEM, w_base=0, t_base=0, tiles=0, ternary=0), "tiles = 0"),
    (lambda: encode(Opcode.CFG_MEM, w_base=1 << 16, t_base=0, tiles=1, ternary=0), "does not fit"),
    (lambda: encode(Opcode.CFG_MEM, w_base=0, t_base=0, tiles=1), "missing"),
    (lambda: encode(Opcode.END, bogus=1), "no field"),
    (lambda: encode(Opcode.SYNC, token=1, wait=2), "does not fit"),
    (lambda: decode(15), "unknown opcode"),
    (lambda: decode(Opcode.END.value | 1 << 40), "unused bits"),
    (lambda: decode(1 << 64), "64 bits"),
])
def test_bad_instructions_are_refused(call, message):
    with pytest.raises(IsaError, match=message):
        call()


def test_docs_are_generated_from_the_definition():
    assert DOC.read_text() == isa.markdown(), \
        "docs/isa.md is stale: run `python -m tritium.hw.isa > docs/isa.md`"


def test_disassemble():
    word = encode(Opcode.SYNC, token=7, wait=1)
    assert isa.disassemble(word) == "SYNC token=7 wait=1"
