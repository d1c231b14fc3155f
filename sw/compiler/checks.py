"""The check pass: refuse, with one line naming the layer and a configuration that
would work, what the accelerator cannot run. It changes nothing."""

from ...hw import isa
from .errors import CompileError, pow2

#: The ISA's fields by name (their widths bound what any accelerator's registers hold).
ISA_FIELDS = {f.name: f for spec in isa.INSTRUCTIONS.values() for f in spec.fields}


def check(plan):
    """``(plan, False)``, or :class:`CompileError` for the first thing ``plan.config``
    cannot run."""
    cfg = plan.config
    for p in plan.layers:
        _check_kinds(p, cfg)
        _check_geometry(p, cfg)
        _check_memories(p, cfg)
    _check_results(plan.layers, cfg)
    return plan, False


def _check_kinds(p, cfg):
    """The batch, weights and activations against what the core is built for."""
    core, where = cfg.core, f"layer {p.name}"
    if p.images > cfg.max_images:
        raise CompileError(f"{where}: a batch of {p.images} images needs an accelerator whose "
                           f"RUNs loop over that many images (max_images >= {p.images}; this "
                           f"one: {cfg.max_images}): use a batch of at most {cfg.max_images} "
                           f"for networks with convolutions")
    if p.layer.weight_kind not in core.weight_kinds:
        kinds = ",".join(sorted(set(core.weight_kinds) | {p.layer.weight_kind}))
        raise CompileError(f"{where}: {p.layer.weight_kind} weights need a core built with them "
                           f"(this one: {', '.join(core.weight_kinds)}; a configuration with "
                           f"weight_kinds {kinds} runs it)")
    if not p.bipolar and (p.planes > core.act_bits or not core.bit_serial):
        need = max(2, p.planes)
        raise CompileError(f"{where}: {p.in_act} inputs need a bit-serial core with act_bits "
                           f">= {need} (this core: {core.act_bits}; a configuration with "
                           f"act_bits {need} runs it)")
    if p.out_bits > core.out_bits:
        raise CompileError(f"{where}: {p.out_act} outputs need out_bits >= {p.out_bits} "
                           f"(this core: {core.out_bits})")
    if p.out_act is not None and p.out_act.kind not in ("bipolar", "unsigned"):
        raise CompileError(f"{where}: {p.out_act} outputs are not supported")
    # The output path writes a word's out_bits planes in consecutive cycles; results come
    # one per accumulation, so an accumulation must take at least out_bits beats.
    if p.out_bits > p.result_beats(core):
        raise CompileError(f"{where}: {p.out_act} outputs ({p.out_bits} bit planes a word) need "
                           f"at least {p.out_bits} beats per result, this layer takes "
                           f"{p.result_beats(core)} (one per input plane, weight plane and "
                           f"channel word of its {p.kernel[0]}x{p.kernel[1]} window): give it "
                           f"more input channels or a larger window")


def _check_geometry(p, cfg):
    """The window and tensor sizes against the ISA's fields and the accumulators."""
    core, where = cfg.core, f"layer {p.name}"
    for name, value in (("kh", p.kernel[0]), ("kw", p.kernel[1]), ("sh", p.stride[0]),
                        ("sw", p.stride[1]), ("ph", p.padding[0]), ("pw", p.padding[1]),
                        ("in_h", p.in_height), ("in_w", p.in_width),
                        ("in_cw", p.in_channel_words(core.simd)),
                        ("out_cw", p.out_channel_words(core.simd)),
                        ("tiles", p.tiles(core.pe)), ("pool", p.pool)):
        if value > ISA_FIELDS[name].largest:
            raise CompileError(f"{where}: {name} = {value} exceeds the ISA's limit "
                               f"{ISA_FIELDS[name].largest}")
    # The core's accumulators are sized for rows of padded_fan_in lanes
    # (hw/config.py, max_abs_result): a longer row could overflow them.
    words = p.words_per_row(core.simd)
    if words > core.weight_depth:
        raise CompileError(f"{where}: a weight row takes {words} words, a bank holds "
                           f"{core.weight_depth} (try a configuration with weight_depth "
                           f"{pow2(words)})")
    lanes = p.plane_words(core.simd) * core.simd
    if lanes > core.padded_fan_in:
        raise CompileError(f"{where}: a weight row takes {lanes} lanes, this core's "
                           f"accumulators are sized for max_fan_in {core.max_fan_in} "
                           f"(try a core with max_fan_in >= {lanes})")


def _check_memories(p, cfg):
    """The layer's tensors, weights and thresholds against the memories."""
    core, where = cfg.core, f"layer {p.name}"
    for label, words in (("input", p.in_words(core.simd)), ("output", p.out_words(core.simd))):
        if label == "input" and p.index == 0 and bandable(p, cfg):
            continue            # the host writes it in bands (band_input)
        if (not p.raw or label == "input") and words > cfg.act_depth:
            raise CompileError(f"{where}: the {label} tensor takes {words} words, an "
                               f"activation buffer holds {cfg.act_depth} (try a "
                               f"configuration with act_depth {pow2(words)})")
    if not cfg.store_depth and p.bank_words(cfg) > core.weight_depth:
        raise CompileError(f"{where}: its weights take {p.bank_words(cfg)} words per bank, the "
                           f"core has {core.weight_depth} (try a configuration with "
                           f"weight_depth {pow2(p.bank_words(cfg))}, "
                           f"more PEs, or a weight store to stream them from)")
    if p.threshold_sets(core.pe) > core.thr_depth:
        raise CompileError(f"{where}: its thresholds take {p.tiles(core.pe)} sets per PE, "
                           f"the core has {core.thr_depth} (try a configuration with thr_depth "
                           f"{pow2(p.tiles(core.pe))})")


def _check_results(layers, cfg):
    """Raw accumulators from the last layer only, and room for them in the result memory."""
    last = layers[-1]
    if not last.raw:
        raise CompileError(f"layer {last.name}: the last layer must output raw accumulators")
    if any(p.raw for p in layers[:-1]):
        raise CompileError("only the last layer may output raw accumulators")
    entries = last.images * last.out_height * last.out_width * last.tiles(cfg.pe)
    if entries > cfg.res_depth:
        raise CompileError(f"layer {last.name}: {entries} result entries, the result memory holds "
                           f"{cfg.res_depth} (try a configuration with res_depth {pow2(entries)})")


def bandable(plan, cfg):
    """Whether the host can write the first layer's input in bands of rows, one segment
    each: a pointwise window (a dense layer or an unfolded convolution) on an accelerator
    without a weight store (whose streamed program is one run)."""
    return not cfg.store_depth and plan.pointwise
