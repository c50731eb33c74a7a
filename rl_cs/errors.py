"""One error type for bad input, so the CLI can print it plainly and exit with code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class InputError(ValueError):
    """Bad user input: names where (file / field), what is wrong, and how to fix it."""

    def __init__(self, where: str, problem: str, fix: str = ""):
        self.where, self.problem, self.fix = where, problem, fix
        message = f"{where}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)

    def __reduce__(self):
        """Ray pickles errors raised in trials; rebuild from the three parts, not the joined message."""
        return type(self), (self.where, self.problem, self.fix)


def closest(name: str, choices: Iterable[str]) -> str:
    """A 'did you mean' hint for an unknown name, or a list of the valid ones."""
    choices = sorted(choices)
    match = difflib.get_close_matches(name, choices, n=1)
    if match:
        return f"did you mean '{match[0]}'? valid: {', '.join(choices)}"
    return f"valid: {', '.join(choices)}"


def require(condition: bool, where: str, problem: str, fix: str = "") -> None:
    """Raise InputError unless condition holds; keeps validation code one line per rule."""
    if not condition:
        raise InputError(where, problem, fix)
