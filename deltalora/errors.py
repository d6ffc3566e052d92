"""The command line's own error type, in a module of its own so that any command module can raise it
without importing `deltalora.cli` (which imports the command modules: that would be a cycle)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """An error caused by the user's input: reported as one message, exit code 2."""


def suggest(key: str, allowed: Iterable[str]) -> str:
    """A "did you mean" and the allowed values, for a message about an unknown name."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} allowed: {', '.join(allowed)}"
