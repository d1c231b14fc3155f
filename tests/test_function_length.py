"""No function or method in hw/, sw/, sim/ or boards/ is longer than
:data:`MAX_LINES` lines (decorators excluded, docstring and body included).

A block that needs more is a component or a pass of its own. Run this file alone
to see the longest functions: ``python tests/test_function_length.py``.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("hw", "sw", "sim", "boards")
MAX_LINES = 150


def function_lengths(source, filename="<source>"):
    """[(lines, "file:line qualified.name")] of every function in ``source``,
    nested functions and methods included."""
    found = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.end_lineno - child.lineno + 1, f"{filename}:{child.lineno} {name}"))
                walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(source, filename), "")
    return found


def repository_function_lengths():
    return [row for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))
            for row in function_lengths(path.read_text(), str(path.relative_to(ROOT)))]


def too_long(rows, limit=MAX_LINES):
    return sorted((row for row in rows if row[0] > limit), reverse=True)


def test_no_function_over_the_limit():
    rows = repository_function_lengths()
    assert len(rows) > 500, "the walk found too few functions: is the tree where it should be?"
    offenders = too_long(rows)
    assert not offenders, "functions over %d lines:\n%s" % (
        MAX_LINES, "\n".join(f"  {n} lines  {where}" for n, where in offenders))


def test_the_check_finds_a_long_method():
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    source = f"class Block:\n    def elaborate(self, platform):\n{body}\n        return x0\n"
    offenders = too_long(function_lengths(source, "synthetic.py"))
    assert offenders == [(MAX_LINES + 2, "synthetic.py:2 Block.elaborate")]
    assert not too_long(function_lengths(source.replace(f"        x{MAX_LINES - 1} = {MAX_LINES - 1}\n", "")
                                         .replace("        x1 = 1\n", ""), "s.py"))


def test_nested_functions_count_on_their_own():
    inner = "\n".join(f"        y{i} = {i}" for i in range(MAX_LINES + 5))
    source = f"def outer():\n    def inner():\n{inner}\n    return inner\n"
    names = [where for _, where in too_long(function_lengths(source, "n.py"))]
    assert names == ["n.py:1 outer", "n.py:2 outer.inner"]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for n, where in sorted(repository_function_lengths(), reverse=True)[:count]:
        print(f"{n:5d}  {where}")
