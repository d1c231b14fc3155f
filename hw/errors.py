"""Errors that tritium reports to users as one clear line.

Every failure a user can cause (bad arguments, a corrupt file, a model the
hardware cannot run) raises :class:`TritiumError` or a subclass. The command
line prints ``tritium: error: <message>`` and exits non-zero; it never shows a
traceback for these.
"""


class TritiumError(Exception):
    """A user-facing error; its message is one line that says what to do."""

    exit_code = 1


class ModelError(TritiumError):
    """The integer model (IR) is malformed or violates the numeric contract."""


class FormatError(TritiumError):
    """A file is not in the expected format (wrong magic, version, CRC, truncated)."""
