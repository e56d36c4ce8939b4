"""Diagnostics: what the checker says about a contract, in words a policy officer understands.

A Diagnostic points at a line and column (1-based, like every editor) and says what is wrong and, where it can,
what to write instead. `ContractInvalid` carries the errors of a contract that cannot be compiled; it is the only
exception that checking or compiling a contract raises, whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a contract: an error (the contract is refused) or a warning (it is accepted)."""

    line: int
    column: int
    message: str
    severity: Severity = "error"

    def to_dict(self) -> dict[str, object]:
        """The form the HTTP API serves inside a CONTRACT_INVALID problem: {"line", "column", "message"}."""
        return {"line": self.line, "column": self.column, "message": self.message}

    def format(self, filename: str = "<contract>") -> str:
        """Compiler style, `file:line:col: error: message`, for terminals and editors."""
        return f"{filename}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class ContractInvalid(Exception):
    """A contract has at least one error; `errors` lists them all, in source order."""

    def __init__(self, errors: list[Diagnostic]) -> None:
        self.errors = list(errors)
        first = str(self.errors[0]) if self.errors else "the contract is invalid"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(first + more)


# The name the issue text uses for the same thing; both are exported.
ContractError = ContractInvalid
