"""The one configuration format: generate writes it, compile / build / bench read it,
docs/config.md describes every field, and error messages suggest only options that exist."""

import ast
import json
import re
from pathlib import Path

import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.errors import TritiumError
from tritium.hw.presets import PRESETS, load_accel_config
from tritium.sw.cli.main import COMMAND_MODULES, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--pe", "2", "--simd", "16", "--weight-depth", "64", "--thr-depth", "32",
         "--act-depth", "64", "--prog-depth", "32", "--res-depth", "8"]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from tritium.boards.bench_patch import small_dense_model
    from tritium.sw.model.ir import save_model
    path = tmp_path_factory.mktemp("model") / "m.npz"
    save_model(small_dense_model(), path)
    return path


def test_generated_configuration_compiles_with_the_same_hash(tmp_path, small_model, capsys):
    """generate's tritium_accel.json is a --hw file; compile reports generate's hash, and the
    compiled folder's compiled.json is one too."""
    assert main(["generate", *SMALL, "-o", str(tmp_path / "hw"), "--json", "--quiet"]) == 0
    generated = json.loads(capsys.readouterr().out)
    config_file = tmp_path / "hw" / "tritium_accel.json"
    assert generated["config"] == str(config_file)
    text = (tmp_path / "hw" / "tritium_accel.v").read_text()
    assert "module tritium_accel" in text and generated["config_hash"] in text
    assert "SB_" not in text and "DP16KD" not in text     # no vendor primitives
    assert main(["compile", str(small_model), "--hw", str(config_file),
                 "-o", str(tmp_path / "m"), "--json"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert compiled["config_hash"] == generated["config_hash"]
    again = load_accel_config(str(tmp_path / "m" / "compiled.json"))
    assert again.hash == generated["config_hash"] == load_accel_config(str(config_file)).hash


def test_generate_takes_a_preset_and_the_field_options_give_the_same_configuration(tmp_path,
                                                                                  capsys):
    """--hw PRESET and the field options are two spellings of one configuration format;
    giving both is refused."""
    from tritium.sw.cli.commands.generate import ACCEL_OPTIONS, CORE_OPTIONS, config_from_args
    parser = build_parser()
    preset = PRESETS["icebreaker"]
    options = []
    for option, field, kind, _ in CORE_OPTIONS + ACCEL_OPTIONS:
        value = getattr(preset.core, field, None) if any(field == f for _, f, _, _ in CORE_OPTIONS) \
            else getattr(preset, field)
        if kind == "flag":
            options += [option] if value else []
        elif field == "weight_kinds":
            options += [option, ",".join(value)]
        else:
            options += [option, str(value)]
    args = parser.parse_args(["generate", *options, "-o", str(tmp_path / "x")])
    assert config_from_args(args) == preset
    args = parser.parse_args(["generate", "--hw", "icebreaker", "-o", str(tmp_path / "x")])
    assert config_from_args(args) == preset
    assert main(["generate", "--hw", "icebreaker", "--pe", "4", "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "--hw or field options (--pe), not both" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


CORE = {"pe": 2, "simd": 16}


@pytest.mark.parametrize("config, named", [
    ({"core": {"simd": 32}}, "configuration field core.pe is missing"),
    ({"core": {"pe": 2}}, "configuration field core.simd is missing"),
    ({"act_depth": 64}, "configuration field core is missing"),
    ({"core": {**CORE, "weight_kind": ["binary"]}}, "unknown configuration field core.weight_kind"),
    ({"core": CORE, "act_dept": 64}, "unknown configuration field act_dept"),
    ({"core": CORE, "accel_config_version": 1}, "version 1 is not supported"),
    ({"core": {**CORE, "weight_kinds": 3}}, "weight_kinds must be a list"),
    ({"core": [2, 16]}, "must be a JSON object"),
    ([2, 16], "must be a JSON object"),
    ({"config": {"core": CORE}, "config_hash": "0123456789abcdef"}, "was edited after"),
])
def test_a_missing_or_unknown_field_is_an_error_naming_it(tmp_path, small_model, capsys, config,
                                                          named):
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(config))
    assert main(["compile", str(small_model), "--hw", str(path), "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tritium: error: --hw {path}: ") and named in err
    assert err.count("\n") == 1 and not (tmp_path / "m").exists()


def test_fields_left_out_take_their_defaults():
    """Only pe and simd are required; a file that writes the defaults out and one that
    leaves them out name the same hardware (the same hash)."""
    from tritium.hw.accel_config import accel_config_from_dict
    short = accel_config_from_dict({"core": {"pe": 4, "simd": 64}})
    assert short == AccelConfig(core=HwConfig(pe=4, simd=64))
    assert accel_config_from_dict(json.loads(json.dumps(short.canonical()))).hash == short.hash
    assert accel_config_from_dict({"core": {"pe": 2, "simd": 16, "weight_kinds": "binary,ternary"}}
                                  ).core.weight_kinds == ("binary", "ternary")
    with pytest.raises(TritiumError, match="neither a preset"):
        load_accel_config("no-such-preset")


def _table_fields(text, heading):
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (`[^`]*`)? ?\|", section,
                                                        re.MULTILINE)}


def test_docs_describe_every_field_with_its_option():
    """docs/config.md has a row for every field of both levels, with the generate option
    that sets it; the README and 'tritium --help' point to it."""
    from dataclasses import fields

    from tritium.sw.cli.commands.generate import ACCEL_OPTIONS, CORE_OPTIONS
    text = (ROOT / "docs" / "config.md").read_text()
    core_rows = _table_fields(text, "## Fields of `core`")
    accel_rows = _table_fields(text, "## Fields of the accelerator")
    assert set(core_rows) == {f.name for f in fields(HwConfig)} | {"config_version"}
    assert set(accel_rows) == {f.name for f in fields(AccelConfig)} | {"accel_config_version"}
    for rows, options in ((core_rows, CORE_OPTIONS), (accel_rows, ACCEL_OPTIONS)):
        for option, field, _, _ in options:
            assert rows[field] == f"`{option}`", field
    assert "docs/config.md" in (ROOT / "README.md").read_text()
    assert "docs/config.md" in build_parser().format_help()


# Modules outside sw/cli/commands whose error messages reach users, and the commands that
# print them: every option such a message suggests must exist on each of those commands.
PRINTED_BY = {
    "hw/presets.py": {"generate", "compile", "build", "bench"},
    "sw/util/fileio.py": {"train", "export", "generate", "compile", "report"},
    "sw/train/inputs.py": {"sim", "run"},
    "sw/train/models.py": {"train", "demo"},
    "sw/bench/synth.py": {"bench"},
    "boards/build.py": {"build"},
    "boards/fit.py": {"build"},
    "boards/program.py": {"program"},
}
#: Options a message names that are not suggestions to the user: another tool's.
NOT_SUGGESTIONS = {("boards/program.py", "--list-boards")}     # openFPGALoader's board list
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


#: Top-level functions of a shared file that only one command runs: (file, function) -> printers.
RUN_BY_ONE = {("sw/cli/commands/sim.py", "run"): {"sim"}}


def _raised_options(path):
    """(line, option, top-level function) of every --option in the string constants of a
    raise statement."""
    for top in ast.parse(path.read_text()).body:
        for node in ast.walk(top):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                text = " ".join(n.value for a in node.exc.args for n in ast.walk(a)
                                if isinstance(n, ast.Constant) and isinstance(n.value, str))
                for option in OPTION.findall(text):
                    yield node.lineno, option, getattr(top, "name", None)


def test_every_suggested_option_exists_on_the_commands_that_print_it():
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    options = {name: set(p._option_string_actions) for name, p in sub.choices.items()}
    shared = {"sw/cli/commands/sim.py": {"sim", "run"}}     # run uses sim's input selection
    bad = []
    for root in ("sw", "hw", "boards", "sim"):
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            name = path.stem if rel.startswith("sw/cli/commands/") else None
            printers = shared.get(rel) or ({name} if name in COMMAND_MODULES else
                                           PRINTED_BY.get(rel, set()))
            for line, option, function in _raised_options(path):
                if (rel, option) in NOT_SUGGESTIONS:
                    continue
                by = RUN_BY_ONE.get((rel, function), printers)
                missing = sorted(c for c in by if option not in options[c])
                if missing or not by:
                    bad.append(f"{rel}:{line}: {option} (not an option of "
                               f"{', '.join(missing) or 'any command that prints it'})")
    assert not bad, "\n".join(bad)
