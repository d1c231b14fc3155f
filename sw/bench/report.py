"""HTML reports with PNG plots for compiled models, builds and benchmarks.

:func:`collect` finds what a folder holds (it looks at the folder and one
level of sub-folders):

* ``compiled.json`` of ``tritium compile``: per-layer beats, cycles and
  utilisation, and next to it ``simulation.json``, the result of the last
  ``tritium sim`` of that folder (images, mismatches, accuracy);
* ``build.json`` of ``tritium build``: LUTs, block RAMs, Fmax, timing;
* ``bench.json`` of ``tritium bench --json``: whole-benchmark figures.

:func:`write_report` turns that into ``index.html`` and PNG plots in one
output folder, written to a temporary folder first and renamed into place.
"""

import html
import json
import os
import shutil
import textwrap
from pathlib import Path

from ...hw.errors import TritiumError
from ..compiler.image import SIMULATION_SUMMARY
from ..util.fileio import temp_dir
from .anchors import ANCHORS

#: PE-array utilisation target (docs/benchmarks.md; drawn on the plots).
UTILIZATION_TARGET = 0.90

#: What the build table calls each field of a build.json, in its order.
BUILD_FIELDS = (
    ("board", "board"),
    ("config_hash", "accelerator configuration hash"),
    ("luts", "logic cells (LUT4) used"),
    ("rams", "block RAMs used"),
    ("sprams", "SPRAMs used"),
    ("clock_mhz", "clock (PLL), MHz"),
    ("fmax_mhz", "Fmax after routing, MHz"),
    ("target_mhz", "target clock, MHz"),
    ("timing_met", "timing met"),
    ("seed", "nextpnr seed"),
    ("patched", "model patched into a cached build"),
    ("build_seconds", "build time, s"),
    ("patch_seconds", "patch time, s"),
    ("bitstream", "bitstream"),
)

#: Source column of throughput rows that are computed, not measured on a board.
COMPUTED = "computed: compiled cycles at the build's clock"


def _load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise TritiumError(f"{path}: not a readable JSON file ({e})") from None


def collect(folder):
    """``{"compiled": [(name, dict)], "builds": [...], "bench": [...]}`` found in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TritiumError(f"{folder}: no such folder")
    found = {"compiled": [], "builds": [], "bench": []}
    for kind, filename in (("compiled", "compiled.json"), ("builds", "build.json"),
                           ("bench", "bench.json")):
        for path in sorted([folder / filename, *folder.glob(f"*/{filename}")]):
            if path.is_file():
                name = path.parent.name if path.parent != folder else folder.name
                data = _load_json(path)
                if kind == "compiled":
                    data = dict(data, folder=str(path.parent))
                    simulation = path.parent / SIMULATION_SUMMARY
                    if simulation.is_file():
                        data["simulation"] = _load_json(simulation)
                found[kind].append((name, data))
    if not any(found.values()):
        raise TritiumError(f"{folder}: nothing to report (no compiled.json, build.json or "
                           f"bench.json here or one folder down)")
    return found


def network_name(compiled, folder_name):
    """What a compiled model is, for a title: its topology and weight kinds as the
    model's metadata records them (``TFC, binary weights``), else ``folder_name``."""
    meta = compiled.get("meta") or {}
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    arch = source.get("arch") or meta.get("arch")
    if not arch:
        return folder_name
    kinds = sorted(set(source.get("weights") or []) - {"float"})
    return arch.upper() + (f", {' / '.join(kinds)} weights" if kinds else "")


def simulation_text(simulation):
    """One sentence on a simulation.json: simulator, images, mismatches, accuracy."""
    parts = [f"Last simulation ({simulation.get('simulator', '?')}): "
             f"{simulation.get('images', '?')} images, {simulation.get('mismatches', '?')} "
             "mismatches against the golden reference"]
    if simulation.get("accuracy") is not None:
        parts.append(f", accuracy {100 * simulation['accuracy']:.2f} %")
    if simulation.get("dataset"):
        parts.append(f" ({simulation['dataset']})")
    return "".join(parts) + "."


def layer_rows(compiled):
    """Per-layer rows of a compiled.json: name, beats, cycles, utilisation."""
    return [(l["name"] + (f" +{l['pool']}" if l.get("pool") else ""), l["beats"], l["cycles"],
             l["utilization"]) for l in compiled["io"]["layers"]]


def cycles_per_image(compiled):
    """Cycles of one program run divided by the images it classifies (compiled.json)."""
    return compiled["cycles_per_image"]


def _segments_note(compiled):
    """", in N program runs ..." for a model that runs in segments (compiled.json)."""
    segments = compiled["io"].get("segments")
    if not segments:
        return ""
    return (f", in {len(segments)} program runs a batch (segments of "
            + ", ".join(f"{s['cycles']:,}" for s in segments)
            + " cycles; the host loads each one's model image before it)")


def throughput(compiled, build):
    """images/s and images/s per (LUT * MHz) of a compiled model on a build."""
    fmax, luts = build.get("fmax_mhz"), build.get("luts")
    if not fmax or not luts:
        return None
    # The board runs at its PLL clock; a build that misses timing is counted at its Fmax.
    mhz = min(fmax, build.get("clock_mhz") or build.get("target_mhz") or fmax)
    ips = mhz * 1e6 / cycles_per_image(compiled)
    return {"mhz": mhz, "images_per_s": ips, "images_per_s_per_lut_mhz": ips / (luts * mhz)}


# ---------------------------------------------------------------- plots

def _plot_layers(rows, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows]
    fig, (ax_u, ax_c) = plt.subplots(1, 2, figsize=(max(6, 0.8 * len(rows) + 4), 3.6))
    ax_u.bar(names, [100 * r[3] for r in rows], color="#3b7dd8")
    ax_u.axhline(100 * UTILIZATION_TARGET, color="#d84b3b", linestyle="--", linewidth=1,
                 label=f"target {100 * UTILIZATION_TARGET:.0f} %")
    ax_u.set_ylim(0, 105)
    ax_u.set_ylabel("PE-array utilisation (%)")
    ax_u.legend(loc="lower right", fontsize=8)
    ax_c.bar(names, [r[2] for r in rows], color="#5aa469")
    ax_c.set_ylabel("cycles per batch")
    for ax in (ax_u, ax_c):
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_resources(name, build, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = []
    for key, label in (("luts", "logic cells (LUT4)"), ("rams", "block RAM"), ("sprams", "SPRAM")):
        used, total = build.get(key), build.get(f"{key}_available")
        if used is not None and total:
            items.append((label, 100 * used / total, f"{used} / {total}"))
    if not items:
        return False
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(items) + 1.2))
    ax.barh([i[0] for i in items], [i[1] for i in items], color="#8a63d2")
    for y, item in enumerate(items):
        ax.text(min(item[1], 100) + 1, y, item[2], va="center", fontsize=8)
    ax.set_xlim(0, 120)
    ax.set_xlabel(f"% of the {build.get('board', '')} FPGA")
    ax.set_title(f"{name}: resources", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- HTML

def _table(headers, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(x, digits=3):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.{digits}g}" if abs(x) < 1 else f"{x:,.1f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def comparison_rows(found):
    """Our measured rows (compiled model x build) next to the published anchors."""
    rows = []
    for cname, compiled in found["compiled"]:
        for bname, build in found["builds"]:
            if build.get("config_hash") not in (None, compiled.get("config_hash")):
                continue
            t = throughput(compiled, build)
            if t:
                rows.append([f"tritium ({compiled.get('describe', '').split(',')[0]})",
                             network_name(compiled, cname), build.get("board", bname),
                             _fmt(t["images_per_s"]), _fmt(build["luts"]), _fmt(t["mhz"]),
                             f"{t['images_per_s_per_lut_mhz']:.4f}", COMPUTED])
    for a in ANCHORS:
        rows.append([a.system, a.network.upper(), a.device, _fmt(a.images_per_s), _fmt(a.luts),
                     _fmt(a.mhz), f"{a.images_per_s_per_lut_mhz:.4f}", a.source])
    return rows


def _bench_section(name, bench, out):
    """HTML of a bench.json: boards, throughput against the anchors, utilisation per layer."""
    m = bench.get("machine", {})
    parts = [f"<h2>Benchmark: {html.escape(name)}</h2>",
             f"<p>Measured {html.escape(str(m.get('date', '?')))} on {html.escape(str(m.get('platform', '?')))}"
             f" ({m.get('cpu_count', '?')} CPUs), {bench.get('seconds', '?')} s.</p>"]
    boards = {b: r for b, r in bench.get("boards", {}).items() if r.get("built", True)}
    for b, r in bench.get("boards", {}).items():
        if not r.get("built", True):
            u = r.get("unfinished", {})
            reached = (f" Placement reached: {u['placed_luts']} of {u['placed_luts_available']} "
                       f"logic cells, {u.get('placed_rams', '?')} block RAMs, pre-route Fmax "
                       f"estimate {u.get('preroute_fmax_mhz', '?')} MHz; the router's last count: "
                       f"{u.get('router_overused', '?')} overused wires."
                       if "placed_luts" in u else "")
            parts.append(f"<p>{html.escape(b)}: not built ({html.escape(r.get('reason', '?'))})."
                         f"{html.escape(reached)}</p>")
    if boards:
        parts.append(_table(
            ["board", "lanes", "logic cells", "block RAM", "PE LUT4/lane", "Fmax MHz", "clock MHz",
             "timing met", "patch speedup"],
            [(b, r["lanes"], f"{r['luts']} / {r['luts_available']}",
              f"{r['rams']} / {r['rams_available']}", r["lut4_per_lane"], _fmt(r["fmax_mhz"]),
              _fmt(r["clock_mhz"]), _yes_no(r["timing_met"]), f"{r['patch_speedup']:.0f}x")
             for b, r in boards.items()]))
        rows = [(f"tritium {b}", net.upper(), b, _fmt(t.get("images_per_s")), _fmt(r["luts"]),
                 _fmt(min(r["clock_mhz"], r["fmax_mhz"])),
                 f"{t['images_per_s_per_lut_mhz']:.4f}" if t.get("fits") else "does not fit",
                 "computed: ISA-simulator cycles at the routed clock")
                for b, r in boards.items() for net, t in r["throughput"].items()]
        rows += [(a.system, a.network.upper(), a.device, _fmt(a.images_per_s), _fmt(a.luts),
                  _fmt(a.mhz), f"{a.images_per_s_per_lut_mhz:.4f}", a.source) for a in ANCHORS]
        parts += ["<h3>Throughput</h3>",
                  _table(["system", "network", "device / board", "images/s", "LUT", "MHz",
                          "images/s per (LUT x MHz)", "source"], rows)]
    for key, entry in bench.get("utilization_detail", {}).items():
        if entry.get("fits"):
            png = "util_" + key.replace("/", "_") + ".png"
            rows = [(n, 0, 0, u) for n, u in sorted(entry["layers"].items(), key=_layer_order)]
            _plot_utilization(rows, f"{key}: utilisation per layer", out / png)
            parts.append(f'<img src="{png}" alt="{html.escape(key)} utilisation" width="420">')
        else:
            parts.append(f"<p>{html.escape(key)}: does not fit ({html.escape(entry['reason'])})</p>")
    return parts


def _yes_no(value):
    return "yes" if value is True else "no" if value is False else _fmt(value)


def _layer_order(item):
    """Layers in network order (bench.json keeps them sorted by name: fc10 before fc8)."""
    digits = "".join(ch for ch in item[0] if ch.isdigit())
    return (int(digits) if digits else -1, item[0])


def _plot_utilization(rows, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar([r[0] for r in rows], [100 * r[3] for r in rows], color="#3b7dd8")
    ax.axhline(100 * UTILIZATION_TARGET, color="#d84b3b", linestyle="--", linewidth=1)
    ax.set_ylim(0, 105)
    ax.set_ylabel("utilisation (%)")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _build_value(build, key):
    """A build.json field as the build table shows it (used / available, yes / no)."""
    value = build[key]
    if build.get(f"{key}_available"):
        return f"{_fmt(value)} / {_fmt(build[key + '_available'])}"
    return _yes_no(value) if isinstance(value, bool) else _fmt(value)


def render(found, out):
    """Write plots into ``out`` and return the HTML text."""
    parts = ["<h1>tritium report</h1>"]
    for name, compiled in found["compiled"]:
        png = f"layers_{name}.png"
        rows = layer_rows(compiled)
        network = network_name(compiled, name)
        _plot_layers(rows, f"{network}: {compiled.get('describe', '')}", out / png)
        parts += [f"<h2>Compiled model: {html.escape(network)}</h2>",
                  f"<p>Folder <code>{html.escape(compiled.get('folder', name))}</code>; "
                  f"accelerator {html.escape(compiled.get('describe', ''))}; configuration hash "
                  f"<code>{html.escape(compiled.get('config_hash', ''))}</code>; "
                  f"{cycles_per_image(compiled):,.1f} cycles per image (computed by the "
                  f"compiler, equal to the RTL's){_segments_note(compiled)}.</p>"]
        if compiled.get("simulation"):
            parts.append(f"<p>{html.escape(simulation_text(compiled['simulation']))}</p>")
        else:
            parts.append("<p>Not simulated yet (<code>tritium sim</code> on this folder "
                         "records its accuracy and mismatches here).</p>")
        parts += [f'<img src="{png}" alt="per-layer utilisation and cycles">',
                  _table(["layer", "beats", "cycles", "utilisation"],
                         [(r[0], r[1], r[2], f"{100 * r[3]:.1f} %") for r in rows])]
    for name, build in found["builds"]:
        png = f"resources_{name}.png"
        parts.append(f"<h2>Build: {html.escape(name)}</h2>")
        parts.append(_table(["", ""], [(label, _build_value(build, key))
                                       for key, label in BUILD_FIELDS if key in build]))
        if _plot_resources(name, build, out / png):
            parts.append(f'<img src="{png}" alt="resource use against the device">')
    for name, bench in found["bench"]:
        parts += _bench_section(name, bench, out)
    parts += ["<h2>Comparison with published accelerators</h2>",
              _table(["system", "network", "device / board", "images/s", "LUT", "MHz",
                      "images/s per (LUT x MHz)", "source"], comparison_rows(found))]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;font-size:13px}th{background:#eee}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>tritium report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(folder, out=None):
    """Write the report of ``folder`` into ``out`` (default ``folder/report``); its index path."""
    found = collect(folder)
    out = Path(out) if out else Path(folder) / "report"
    tmp = temp_dir(f".{out.name}.", out.parent)
    try:
        (tmp / "index.html").write_text(render(found, tmp), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"
