import json
import os
import sys
from pathlib import Path

import pytest

# tests/ helpers (naive.py, strategies.py) import as plain modules from every folder below.
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

SIM = Path(__file__).resolve().parent / "sim"
# Modules outside tests/sim/ that simulate the whole accelerator or host link (Amaranth).
RTL_MODULES = {"test_accel.py", "test_host.py"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Marks ``rtl`` (before ``-m`` selects) every test that simulates the accelerator's
    RTL: all of tests/sim/ (cocotb on Verilator) and the modules of RTL_MODULES."""
    for item in items:
        if SIM in item.path.parents or item.path.name in RTL_MODULES:
            item.add_marker(pytest.mark.rtl)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A 64-32-10 binary dense model compiled for SMALL (folder) and its config file."""
    from tritium.boards.bench_patch import SMALL, small_dense_model
    from tritium.sw.cli.main import main
    from tritium.sw.model.ir import save_model
    tmp = tmp_path_factory.mktemp("small")
    save_model(small_dense_model(), tmp / "m.npz")
    hw = tmp / "small.json"
    hw.write_text(json.dumps(SMALL.canonical()))
    assert main(["compile", str(tmp / "m.npz"), "--hw", str(hw), "-o", str(tmp / "m")]) == 0
    return tmp / "m", hw
