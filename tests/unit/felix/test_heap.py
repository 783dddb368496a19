"""IdleTrimmer: Felix's main loop hands free heap back at most every `every` seconds, and
only after work (issue #10)."""

from __future__ import annotations

from calico.felix import heap


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trimmer(every: float = 10.0):
    clock, calls = Clock(), []
    return heap.IdleTrimmer(every, clock, lambda: calls.append(clock.now)), clock, calls


def test_no_trim_without_work():
    t, clock, calls = trimmer()
    clock.now += 60
    assert not t.maybe_trim()
    assert calls == []


def test_at_most_every_period_after_work():
    t, clock, calls = trimmer()
    t.worked()
    clock.now += 5
    assert not t.maybe_trim()  # too soon after the start
    clock.now += 5
    assert t.maybe_trim()
    t.worked()
    clock.now += 9
    assert not t.maybe_trim()
    clock.now += 1
    assert t.maybe_trim()
    assert calls == [110.0, 120.0]
    clock.now += 100
    assert not t.maybe_trim()  # idle since: nothing new to hand back


def test_zero_turns_it_off():
    t, clock, calls = trimmer(every=0)
    t.worked()
    clock.now += 1000
    assert not t.maybe_trim()
    assert calls == []

