"""Waiting on a condition with a generous deadline, instead of sleeping and hoping.

Tests must pass on a busy machine: a sleep guesses how long something takes, a wait asks whether it
has happened. ``wait_until`` polls ``check`` until it returns a truthy value or the deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 60.0


def wait_until(check: Callable[[], T], timeout: float = DEADLINE_S, interval: float = 0.05,
               ignore: tuple[type[BaseException], ...] = ()) -> T | None:
    """The first truthy result of ``check`` within ``timeout`` seconds, else its last result (falsy).

    Exceptions of the types in ``ignore`` count as "not yet" (e.g. a server that is not scraped yet).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ignore:
            result = None
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
