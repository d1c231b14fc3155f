"""Configuration of the whole accelerator: the PE-array core plus its memories.

:class:`AccelConfig` wraps the core's :class:`~tritium.hw.config.HwConfig`
and adds the sizes of the memories around it (activation buffers, program,
results). Its hash (:attr:`AccelConfig.hash`) covers both; compiled model
images record it and the driver and the hardware refuse an image whose hash
differs. The drain latency of a ``RUN`` (:meth:`AccelConfig.run_drain`) is
defined here once: the controller is built to it and the ISA-level simulator
counts it (docs/accelerator.md, "Timing").
"""

from dataclasses import dataclass, field

from .config import ConfigError, HwConfig, config_from_dict, config_hash, versioned_fields

#: Bumped whenever a field's meaning or the generated accelerator changes.
ACCEL_CONFIG_VERSION = 1

#: Pipeline stages of the controller around the core, one cycle each: the
#: address-generator register and the activation-buffer read before the core;
#: after it, the register that ends a RUN once its last result is written.
ADDRESS_STAGES = 2
OUTPUT_STAGES = 1
#: The cycle of the start pulse, counted in every run (the cycle counter starts at 1).
START_CYCLES = 1


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of a generated accelerator.

    Parameters
    ----------
    core : HwConfig
        The PE array and threshold unit.
    act_depth : int
        Words of S bits in each of the two activation buffers.
    prog_depth : int
        Instructions the program memory holds.
    res_depth : int
        Entries (P accumulators each) of the result memory.
    """

    core: HwConfig = field(default_factory=HwConfig)
    act_depth: int = 1024
    prog_depth: int = 128
    res_depth: int = 16

    def __post_init__(self):
        if not isinstance(self.core, HwConfig):
            raise ConfigError("AccelConfig.core must be a HwConfig")
        for name in ("act_depth", "prog_depth", "res_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 1 << 20:
                raise ConfigError(f"{name} must be an integer in 2..{1 << 20}, got {value!r}")
        if self.core.simd % self.core.pe:
            raise ConfigError(f"the accelerator packs P outputs into words of S lanes and needs "
                              f"S % P == 0 (got P={self.core.pe}, S={self.core.simd}); try "
                              f"P={_largest_divisor(self.core.simd, self.core.pe)}")

    # -- derived ------------------------------------------------------------

    @property
    def pe(self):
        return self.core.pe

    @property
    def simd(self):
        return self.core.simd

    def run_drain(self):
        """Cycles from a RUN's last beat to its last write (see docs/accelerator.md)."""
        return ADDRESS_STAGES + self.core.latency + OUTPUT_STAGES

    # -- canonical form and hash -------------------------------------------

    def canonical(self):
        return {"core": self.core.canonical(), "act_depth": self.act_depth,
                "prog_depth": self.prog_depth, "res_depth": self.res_depth,
                "accel_config_version": ACCEL_CONFIG_VERSION}

    @property
    def hash(self):
        """16 hex digits of SHA-256 over the canonical JSON (as :func:`config_hash`)."""
        return config_hash(self.canonical())

    def describe(self):
        return (f"{self.core.describe()}; activation buffers 2 x {self.act_depth} words, "
                f"program {self.prog_depth}, results {self.res_depth}")


def accel_config_from_dict(d):
    """Rebuild an :class:`AccelConfig` from :meth:`AccelConfig.canonical` output (checked)."""
    d = versioned_fields(d, "accel_config_version", ACCEL_CONFIG_VERSION,
                         {"core", "act_depth", "prog_depth", "res_depth"},
                         "accelerator configuration")
    core = config_from_dict(d.pop("core", {}))
    return AccelConfig(core=core, **d)


def _largest_divisor(s, p):
    return max(d for d in range(1, p + 1) if s % d == 0)
