"""tritium.sw, by stage: model (integer IR, golden reference), train, compiler, run, bench, cli; util."""

__version__ = "0.1.0"
