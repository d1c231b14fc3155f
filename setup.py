"""The package list of tritium, found from the source tree.

The import package ``tritium`` maps onto the repository's top-level folders
(``tritium.hw`` is ``hw/``, ``tritium.sw.cli.commands`` is ``sw/cli/commands/``, ...).
Every folder with an ``__init__.py`` below them is a package of the wheel, so a
new subpackage is never left out. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: The top-level folders that make up the ``tritium`` import package.
FOLDERS = ("hw", "sw", "sim", "boards")

setup(
    package_dir={f"tritium.{folder}": folder for folder in FOLDERS},
    packages=[f"tritium.{name}" for name in
              find_packages(include=[*FOLDERS, *(f"{folder}.*" for folder in FOLDERS)])],
)
