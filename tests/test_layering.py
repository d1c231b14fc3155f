"""Imports flow one way: gateware and software import the contract, tools import anything.

Every import statement of every module in hw/, sw/, sim/ and boards/ (those
inside functions included) is read with :mod:`ast` and checked against
:data:`LAYERS`; docs/hardware.md ("Layers") explains the rule.
"""

import ast
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("hw", "sw", "sim", "boards")

#: The layers, lowest first: (name, modules, layers its modules may import). A
#: module belongs to the layer of its most specific matching pattern (the
#: longest; fnmatch over dotted names). Imports from outside tritium are free.
LAYERS = (
    # The hardware-software contract: the ISA, the host protocol, the model-image
    # format, bit packing, configurations with their hashes and presets, port
    # layouts, the cycle model and the errors.
    ("contract", ("tritium.hw.isa", "tritium.hw.protocol", "tritium.hw.image_format",
                  "tritium.hw.packing", "tritium.hw.config", "tritium.hw.accel_config",
                  "tritium.hw.presets", "tritium.hw.layouts", "tritium.hw.contract",
                  "tritium.hw.errors", "tritium.hw.weight_kinds"),
     {"contract"}),
    # Gateware: the Amaranth components and their Verilog generation.
    ("gateware", ("tritium.hw", "tritium.hw.*"), {"contract", "gateware"}),
    # Software, by stage: the integer model (IR, golden reference, kernels, layout),
    # training and export, the compiler and image writer/reader, the run loop with
    # the ISA simulator and the host driver, and shared helpers (util).
    ("software", ("tritium.sw", "tritium.sw.*"), {"contract", "software"}),
    # Tools on top: simulation harnesses, board builds, the benchmarks with the anchors
    # and the report, the CLI.
    ("tools", ("tritium.sim", "tritium.sim.*", "tritium.boards", "tritium.boards.*",
               "tritium.sw.cli", "tritium.sw.cli.*", "tritium.sw.bench", "tritium.sw.bench.*"),
     {"contract", "gateware", "software", "tools"}),
)


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("tritium",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def source_modules():
    """{dotted name: path} of every module of the tritium package."""
    return {_module_name(p): p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))}


MODULES = source_modules()


def layer_of(module):
    """The name of the layer ``module`` belongs to (None: none matches)."""
    best = max(((len(pattern), name) for name, patterns, _ in LAYERS for pattern in patterns
                if fnmatchcase(module, pattern)), default=None)
    return best and best[1]


def imported_modules(module, node, is_package=False):
    """The tritium modules an ``import`` / ``from ... import`` statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "tritium"]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != "tritium":
        return []
    # ``from package import name``: the submodule ``name`` where there is one.
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names]


def violations(module, source, is_package=False):
    """One line per import of ``source`` (the text of ``module``) against :data:`LAYERS`."""
    layer = layer_of(module)
    allowed = next(may for name, _, may in LAYERS if name == layer)
    wrong = {(node.lineno, target) for node in ast.walk(ast.parse(source))
             if isinstance(node, (ast.Import, ast.ImportFrom))
             for target in imported_modules(module, node, is_package)
             if layer_of(target) not in allowed}
    return [f"{module} line {line}: imports {target} ({layer_of(target)}); "
            f"rule: {layer} imports only {', '.join(sorted(allowed))}" for line, target in sorted(wrong)]


def test_imports_flow_one_way():
    found = [line for module, path in MODULES.items()
             for line in violations(module, path.read_text(), path.name == "__init__.py")]
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_every_module_has_a_layer_and_every_named_module_exists():
    assert [m for m in MODULES if layer_of(m) is None] == []
    named = [p for _, patterns, _ in LAYERS for p in patterns if "*" not in p]
    assert [p for p in named if p not in MODULES] == []


def test_a_wrong_import_fails():
    """The check catches the software side imported from gateware, also inside a function."""
    top = violations("tritium.hw.pe", "from ..sw.compiler import compile_model\n")
    assert top == ["tritium.hw.pe line 1: imports tritium.sw.compiler (software); "
                   "rule: gateware imports only contract, gateware"]
    nested = violations("tritium.hw.accel", "import json\n\ndef f():\n    from ..sw.model import reference\n")
    assert len(nested) == 1 and "line 4: imports tritium.sw.model.reference (software)" in nested[0]
    assert violations("tritium.hw.uart", "import tritium.sw.run.driver\n") != []
    # The contract imports nothing above it; software does not reach into gateware.
    assert violations("tritium.hw.isa", "from .pe import PE\n") != []
    assert violations("tritium.sw.compiler.codegen", "from ...hw.accel import Accelerator\n") != []
    assert violations("tritium.sw.run.driver", "from ..cli.main import main\n") != []
    # Imports along the layering pass.
    allowed = ("from .isa import Opcode\nfrom .errors import TritiumError\nfrom amaranth.hdl import Module\n")
    assert violations("tritium.hw.pe", allowed) == []
    assert violations("tritium.sw.compiler.codegen", "from ...hw import isa\nfrom ..model.ir import Dense\n") == []
    tools = "from ..sw.compiler import Compiled\nfrom ..hw.accel import ACCEL_TOP\n"
    assert violations("tritium.sim.runner", tools) == []
