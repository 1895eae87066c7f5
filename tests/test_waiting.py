"""One deadline helper: it returns the first true answer or names what it waited for.

The clock is the test's own: it moves only when the helper sleeps.
"""

from __future__ import annotations

import pytest

from coursehub_tools.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.unit


class Clock:
    """Time that passes only when someone sleeps on it."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_first_true_answer_is_returned():
    clock = Clock()
    answers = iter([None, [], {"ready": True}])
    found = wait_until(lambda: next(answers), 10, "ready", every=1, clock=clock, sleep=clock.sleep)
    assert found == {"ready": True}
    assert clock.sleeps == [1, 1]


def test_a_condition_never_true_times_out_naming_it_after_a_last_look_at_the_deadline():
    clock = Clock()
    looked_at: list[float] = []
    with pytest.raises(WaitTimeout, match=r"^sam's server stopped: not within 2.5 s$"):
        wait_until(lambda: looked_at.append(clock.now), 2.5, "sam's server stopped",
                   every=1, clock=clock, sleep=clock.sleep)  # fmt: skip
    assert looked_at == [100, 101, 102, 102.5]
    assert isinstance(WaitTimeout("x"), TimeoutError), "callers catching TimeoutError still do"


def test_only_the_named_failures_count_as_not_yet():
    clock = Clock()
    answers = iter([ConnectionError("refused"), "listening"])

    def listening():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    kwargs = {"clock": clock, "sleep": clock.sleep}
    assert wait_until(listening, 5, "the hub", not_yet=(ConnectionError,), **kwargs) == "listening"
    with pytest.raises(KeyError):
        wait_until(lambda: {}["missing"], 5, "a key", not_yet=(ConnectionError,), **kwargs)
