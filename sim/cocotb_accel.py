"""cocotb 2.x testbench of the whole accelerator, through its harness (``tritium_accel_tb``).

Run by :func:`tritium.sim.runner.run_accel_job`, never imported by pytest directly.
The job (JSON file named by ``TRITIUM_JOB``, from :class:`tritium.sim.runner.HarnessBackend`)
lists the harness's commands (:mod:`tritium.sim.harness`): the model load, then per
batch one command per program run, the last one reading the results. The harness
plays each command's host writes from the write file and runs the accelerator, its
clock generated in the Verilog; the testbench issues the commands, waits for each
answer (the simulator runs freely in between, no Python per cycle or per write),
checks ``error`` and the write file, and writes the cycle count of each started
command and the raw result-memory entries of each reading one, with the seconds of
the load and of the batches, to ``TRITIUM_RESULT``.
"""

import json
import os
import time

import cocotb
from cocotb.triggers import ValueChange, with_timeout


@cocotb.test()
async def run_job(dut):
    with open(os.environ["TRITIUM_JOB"]) as f:
        job = json.load(f)
    bits = job["entry_bits"]
    mask = (1 << bits) - 1
    go = 0
    dut.cmd_go.value = go

    async def command(count, start, entries, base):
        nonlocal go
        dut.cmd_count.value, dut.cmd_start.value = count, start
        dut.cmd_entries.value, dut.cmd_res_base.value = entries, base
        go ^= 1
        dut.cmd_go.value = go
        while int(dut.cmd_ack.value) != go:
            await with_timeout(ValueChange(dut.cmd_ack), job["timeout_ns"], "ns")
        assert not int(dut.job_error.value), "the harness's write file ended early"
        if start:
            assert not int(dut.error.value), f"accelerator error {int(dut.error_code.value)}"

    t0 = time.perf_counter()
    first, *runs = job["commands"]
    await command(*first)
    t1 = time.perf_counter()
    cycles, results = [], []
    for count, start, entries, base in runs:
        await command(count, start, entries, base)
        if start:
            cycles.append(dut.cycles.value.to_unsigned())
        if entries:
            raw = dut.results.value.to_unsigned()
            results.append([(raw >> (e * bits)) & mask for e in range(entries)])
    t2 = time.perf_counter()
    with open(os.environ["TRITIUM_RESULT"], "w") as f:
        json.dump({"cycles": cycles, "results": results, "load_s": t1 - t0, "run_s": t2 - t1}, f)
