"""Helpers the host-link tests share: a testbench run in the Amaranth simulator and
the small binary model the link's tests load."""

import numpy as np
from amaranth.sim import Simulator

from tritium.sw.model.ir import ActType, Dense, IntModel


def run_testbench(dut, testbench):
    """``testbench`` (an async function of the simulator context) on ``dut``, 100 MHz clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def small_model(seed=1):
    """A 20-8-5 binary dense model with random weights and thresholds."""
    rng = np.random.default_rng(seed)
    bip = ActType("bipolar")
    w1, w2 = 2 * rng.integers(0, 2, (8, 20)) - 1, 2 * rng.integers(0, 2, (5, 8)) - 1
    layers = [Dense.from_values("fc0", w1, "binary", thresholds=rng.integers(-3, 4, (8, 1)),
                                out_act=bip),
              Dense.from_values("fc1", w2, "binary")]
    return IntModel((20,), bip, layers, meta={})
