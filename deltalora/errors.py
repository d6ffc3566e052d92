"""The command line's own error type, in a module of its own so that any command module can raise it
without importing `deltalora.cli` (which imports the command modules: that would be a cycle)."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input: reported as one message, exit code 2."""
