"""The product's own docs: they cite only the product's files, their links resolve, and
the README's figures are those of the latest benchmark run kept in docs/bench/."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [p for folder in ("hw", "sw", "sim", "boards", "tests", "scripts")
           for p in sorted((ROOT / folder).rglob("*")) if p.suffix in (".py", ".sh")]


@pytest.mark.parametrize("path", DOCS + SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_product_cites_only_its_own_files(path):
    # The team's design brief lives outside the repository.
    assert "DESIGN" + ".md" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_in_the_docs_resolve(path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


def _latest_bench():
    """docs/bench/DATE[-N]/bench.json with the highest DATE, then N."""
    runs = sorted((ROOT / "docs" / "bench").glob("*/bench.json"), key=lambda p: p.parent.name)
    return json.loads(runs[-1].read_text())


def test_readme_figures_are_the_latest_benchmark():
    """Each tritium row of the README's throughput table, and each board's logic cells
    and Fmax quoted in the README, equal the newest bench.json."""
    bench, readme = _latest_bench(), (ROOT / "README.md").read_text()
    devices = {"iCEBreaker": "icebreaker", "ULX3S": "ulx3s"}
    rows = re.findall(r"^\| tritium \| (\w+)[^|]* \| [^|]*\((iCEBreaker|ULX3S)\) \| ([\d,]+) \| "
                      r"([\d,]+) \| ([\d.]+) \|", readme, re.MULTILINE)
    assert len(rows) >= 6
    for network, device, ips, luts, mhz in rows:
        board = bench["boards"][devices[device]]
        assert int(ips.replace(",", "")) == round(board["throughput"][network.lower()]["images_per_s"])
        assert int(luts.replace(",", "")) == board["luts"]
        assert float(mhz) == board["clock_mhz"]
    for device, board in devices.items():
        fmax = bench["boards"][board]["fmax_mhz"]
        for quoted in re.findall(rf"the {device} routes at ([\d.]+) MHz", readme):
            assert float(quoted) == pytest.approx(fmax, abs=0.05)
    cells = {f"{b['luts']:,}" for b in bench["boards"].values()}
    for quoted in re.findall(r"(\d[\d,]*) (?:of [\d,]+ )?logic cells", readme):
        assert quoted in cells


def test_readme_rtl_simulation_figures_are_the_latest_rtl_benchmark():
    runs = sorted((ROOT / "docs" / "bench").glob("*/bench_rtl.json"), key=lambda p: p.parent.name)
    verilator = json.loads(runs[-1].read_text())["verilator"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"runs {verilator['cycles_per_s']:,.0f} cycles/s end to end "
            f"({verilator['run_cycles_per_s']:,.0f} in the run phase), "
            f"{verilator['ceiling_ratio']:.2f}x the time") in readme
    assert f"({verilator['replay']['cycles_per_s']:,.0f} cycles/s)" in readme
