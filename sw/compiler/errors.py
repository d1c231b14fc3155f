"""The compiler's refusal and the sizes it suggests."""

from ...hw.errors import TritiumError


class CompileError(TritiumError):
    """The model cannot run on this accelerator; the message says why and what would."""


def pow2(n):
    """The power of two (at least 2) a memory needs to hold ``n`` words: what a refusal
    suggests."""
    return 1 << max(1, (int(n) - 1).bit_length())
