"""Waiting for a condition with a deadline, written once.

Every wait here polls: a hub, a process table, a port. `wait_until` asks
`condition` until it gives something true and returns that, or raises
`WaitTimeout` naming what it waited for. Its clock and its sleep are
arguments, so a test of a wait on time runs on a clock it moves itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold in time; the message names the condition."""


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    every: float = 0.2,
    not_yet: tuple[type[BaseException], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`condition()`'s first true answer, asked every `every` s for up to `timeout` s.

    An exception of a type in `not_yet` counts as a false answer (a hub that
    does not listen yet); any other propagates. The condition is always asked
    at least once, and once more at the deadline, so a timeout of 0 is one check.
    """
    deadline = clock() + timeout
    while True:
        try:
            if answer := condition():
                return answer
        except not_yet:
            pass
        left = deadline - clock()
        if left <= 0:
            raise WaitTimeout(f"{what}: not within {timeout:g} s")
        sleep(min(every, left))
