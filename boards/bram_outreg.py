"""ECP5 block RAMs with their output register: a pass over yosys' JSON netlist.

A DP16KD read without its output register (``REGMODE NOREG``) has a clock-to-output
time of 5.83 ns in nextpnr's ECP5 timing model (speed grade 6): with the routing to the
flip-flop that the design puts behind it (``weight_reg``'s register after the weight
banks, the threshold unit's threshold register), more than half of a 10 ns cycle is
gone before the data leaves the block RAM's tile. The block RAM's own output register
(``REGMODE OUTREG``) is that flip-flop inside the block RAM. yosys' ECP5 memory mapping
never uses it, so this pass does, between synthesis and place and route:

a DP16KD whose every used output bit drives exactly one flip-flop's data input, those
flip-flops on the block RAM's clock with no set or reset, an initial value of 0 and one
clock enable between them, takes the flip-flops in. Two modes qualify:

* the 36-bit pseudo-dual-port mode (``DATA_WIDTH_B = 36``: port A writes, port B reads
  into ``DOA`` and ``DOB``): ``REGMODE_A`` and ``REGMODE_B`` become ``OUTREG``, ``OCEA``
  and ``OCEB`` the flip-flops' clock enable (the weight banks, the threshold memories);
* a narrower mode (``DATA_WIDTH_B`` 1, 2, 4, 9 or 18) in which port B only reads
  (``WEB = 0``, its data on ``DOB0 ..``) and nothing reads port A's outputs:
  ``REGMODE_B`` becomes ``OUTREG`` and ``OCEB`` the clock enable (the activation buffers,
  2048 x 9 each, with ``AccelConfig.act_reg``).

Each output pin then drives what its flip-flop drove, and the flip-flops are removed. The
data arrive in the same cycle as before (one register after the read), so nothing else
changes. Any other block RAM is left as it is.
"""

import json
from pathlib import Path

from ..sw.util.fileio import atomic_write_text

#: The DP16KD output pins, in the order of its 36-bit word (``{DOB, DOA}``).
OUTPUT_PINS = tuple(f"DOA{i}" for i in range(18)) + tuple(f"DOB{i}" for i in range(18))


def _param(cell, name, default=""):
    """A cell parameter as yosys writes it: binary digits for numbers, text otherwise."""
    value = str(cell["parameters"].get(name, default)).strip()
    if value and set(value) <= {"0", "1"} and len(value) > 1:
        return str(int(value, 2))
    return value


def _one(cell, pin):
    """The single bit on a one-bit pin (an int net id, or "0" / "1" / "x")."""
    return cell["connections"].get(pin, ["0"])[0]


def _connectivity(module):
    """Net id -> list of (cell, pin) reading it, and the net ids on module ports."""
    readers, port_bits = {}, set()
    for name, cell in module["cells"].items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"].get(pin) != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        readers.setdefault(bit, []).append((name, pin))
    for port in module["ports"].values():
        port_bits.update(b for b in port["bits"] if isinstance(b, int))
    return readers, port_bits


def _plain_register(cell, clock):
    """Whether a TRELLIS_FF is a plain register on ``clock`` (no set/reset, not inverted,
    0 at power-up like the block RAM's output register); returns its clock enable ("1"
    when it has none) or None."""
    if cell["type"] != "TRELLIS_FF" or _param(cell, "CLKMUX", "CLK") != "CLK":
        return None
    if _param(cell, "REGSET", "RESET") != "RESET":
        return None                         # an initial value of 1
    if _one(cell, "CLK") != clock:
        return None
    if _param(cell, "LSRMUX", "LSR") != "LSR" or _one(cell, "LSR") != "0":
        return None
    cemux = _param(cell, "CEMUX", "CE")
    if cemux == "1":
        return "1"
    if cemux != "CE":
        return None
    return _one(cell, "CE")


#: Port B's data pins in a mode narrower than 36 bits, by ``DATA_WIDTH_B``.
NARROW_READ_PINS = {w: tuple(f"DOB{i}" for i in range(w)) for w in (1, 2, 4, 9, 18)}


def _read_ports(ram, readers):
    """``(output pins, ports whose REGMODE and OCE change)`` of a DP16KD in a mode this pass
    handles (see the module docstring), else None."""
    width_a, width_b = _param(ram, "DATA_WIDTH_A"), _param(ram, "DATA_WIDTH_B")
    if width_a == width_b == "36":
        return OUTPUT_PINS, ("A", "B")
    if width_b.isdigit() and int(width_b) in NARROW_READ_PINS and _one(ram, "WEB") == "0":
        port_a_read = any(isinstance(_one(ram, f"DOA{i}"), int) and readers.get(_one(ram, f"DOA{i}"))
                          for i in range(18))
        if not port_a_read:
            return NARROW_READ_PINS[int(width_b)], ("B",)
    return None


def _absorbable(module, name, readers, port_bits):
    """``(enable, {pin: register cell}, ports)`` when the DP16KD ``name`` can take its output
    registers in (see the module docstring), else None."""
    ram = module["cells"][name]
    found = _read_ports(ram, readers)
    if found is None:
        return None
    pins, ports = found
    if _param(ram, "REGMODE_A", "NOREG") != "NOREG" or _param(ram, "REGMODE_B", "NOREG") != "NOREG":
        return None
    clock = _one(ram, "CLKB")
    if not isinstance(clock, int) or _one(ram, "CLKA") != clock:
        return None
    if _param(ram, "CLKAMUX", "CLKA") != "CLKA" or _param(ram, "CLKBMUX", "CLKB") != "CLKB":
        return None                         # a falling-edge port (the registers rise)
    if _one(ram, "RSTA") != "0" or _one(ram, "RSTB") != "0":
        return None
    enables, registers = set(), {}
    for pin in pins:
        bit = _one(ram, pin)
        users = readers.get(bit, []) if isinstance(bit, int) else []
        if not users:
            continue                        # an unused output bit
        if bit in port_bits or len(users) != 1 or users[0][1] != "DI":
            return None
        register = module["cells"][users[0][0]]
        enable = _plain_register(register, clock)
        if enable is None:
            return None
        enables.add(enable)
        registers[pin] = users[0][0]
    if len(enables) != 1:
        return None
    return enables.pop(), registers, ports


def absorb_output_registers(netlist):
    """Move the registers behind DP16KD reads into the block RAMs (in place).
    Returns ``(block RAMs changed, flip-flops removed)``."""
    rams = ffs = 0
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        readers, port_bits = _connectivity(module)
        for name in [n for n, c in cells.items() if c["type"] == "DP16KD"]:
            found = _absorbable(module, name, readers, port_bits)
            if found is None:
                continue
            enable, registers, ports = found
            ram = cells[name]
            for port in ports:
                ram["parameters"][f"REGMODE_{port}"] = "OUTREG"
                ram["connections"][f"OCE{port}"] = [enable]
            for pin, register in registers.items():
                ram["connections"][pin] = list(cells[register]["connections"]["Q"])
                del cells[register]
            rams += 1
            ffs += len(registers)
    return rams, ffs


def absorb_in_file(path):
    """:func:`absorb_output_registers` on a yosys JSON file, rewritten in place (through a
    temporary file, so a failure leaves the original)."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    counts = absorb_output_registers(netlist)
    atomic_write_text(path, json.dumps(netlist))
    return counts
