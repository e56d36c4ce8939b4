"""Checks on the code that moves money that stay on in production.

`assert` is removed by `python -O` (and by PYTHONOPTIMIZE), so an invariant written with it is switched off exactly
where it matters. `invariant(condition, message, *values)` is the same check as a plain function call: always
evaluated, raising `InvariantViolation` when the condition is false. One condition per call: a compound check is
written as several calls, so that a failure says which half broke.

An `InvariantViolation` is a bug in the engine, never a refusal of the caller's request: callers do not catch it to
turn it into a business error code; it ends as `INTERNAL` (500), logged with its context.
"""

from __future__ import annotations

from typing import NoReturn, TypeVar

T = TypeVar("T")


class InvariantViolation(AssertionError):
    """An invariant of the engine does not hold: a bug, never the caller's fault. Subclasses AssertionError so
    that code and tests treating a failed `assert` as a bug treat this the same way."""


def invariant(condition: object, message: str, *values: object) -> None:
    """Raise InvariantViolation(`message`, with `values` appended) unless `condition` is true.

    `message` says what must hold (“the batch moves no money into or out of existence”); `values` are what was seen,
    formatted only when the check fails, so the call costs a function call and a truth test on the hot path.
    """
    if not condition:
        _fail(message, values)


def present(value: T | None, message: str) -> T:
    """`value`, which must not be None (`message` says why it cannot be); raises InvariantViolation if it is. For a
    value optional in general but always there on this path: the check stays on and the type checker knows it."""
    if value is None:
        _fail(message, ())
    return value


def _fail(message: str, values: tuple[object, ...]) -> NoReturn:
    if values:
        message = f"{message}: " + ", ".join(repr(value) for value in values)
    raise InvariantViolation(message)


__all__ = ["InvariantViolation", "invariant", "present"]
