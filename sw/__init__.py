"""tritium.sw: training layers, export, the golden reference, the compiler, the CLI."""

__version__ = "0.1.0"
