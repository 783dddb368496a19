"""IdleTrimmer: Felix's main loop hands free heap back at most every `every` seconds, and
only after work (issue #10)."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

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



# ---- HeapProfiler: DebugMemoryProfilePath ------------------------------------------------


def test_profile_file_name_takes_the_timestamp():
    import time

    at = time.mktime((2026, 11, 27, 10, 4, 5, 0, 0, -1))
    profiler = heap.HeapProfiler("/tmp/felix-<timestamp>.heap", clock=lambda: at)
    assert profiler.file_name() == "/tmp/felix-2026-11-27-10:04:05.heap"
    assert heap.HeapProfiler("/tmp/felix.heap").file_name() == "/tmp/felix.heap"


def test_profile_dump_is_a_loadable_snapshot_of_what_was_allocated(tmp_path):
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    profiler = heap.HeapProfiler(str(tmp_path / "sub" / "felix.heap"))
    profiler.start()
    try:
        held = [bytearray(1 << 16) for _ in range(16)]  # 1 MiB from this line
        name = profiler.dump()
        assert name == str(tmp_path / "sub" / "felix.heap")
        assert [p.name for p in (tmp_path / "sub").iterdir()] == ["felix.heap"]  # no partial
        stats = tracemalloc.Snapshot.load(name).statistics("lineno")
        here = [s for s in stats if s.traceback[0].filename == __file__]
        assert max(s.size for s in here) >= len(held) << 16
    finally:
        if not was_tracing:
            tracemalloc.stop()


def test_profile_dump_to_an_unwritable_path_is_logged_not_raised(tmp_path, caplog):
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    blocker = tmp_path / "file"
    blocker.write_text("")
    profiler = heap.HeapProfiler(str(blocker / "felix.heap"))  # a directory under a file
    profiler.start()
    try:
        assert profiler.dump() is None
        assert "Could not write the heap profile" in caplog.text
    finally:
        if not was_tracing:
            tracemalloc.stop()


def test_a_profile_that_cannot_be_put_in_place_leaves_no_partial_file(tmp_path, caplog):
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    (tmp_path / "felix.heap").mkdir()  # the snapshot is written, the rename onto it fails
    profiler = heap.HeapProfiler(str(tmp_path / "felix.heap"))
    profiler.start()
    try:
        assert profiler.dump() is None
        assert "Could not write the heap profile" in caplog.text
        assert [p.name for p in tmp_path.iterdir()] == ["felix.heap"]
    finally:
        if not was_tracing:
            tracemalloc.stop()


# ---- compact: containers back to the size of what they hold -----------------------------


def _churn(container, rounds: int, compacting: bool):
    """Replace members one at a time with new ones, as endpoint churn does."""
    import sys

    sizes, nxt = [], len(container)
    for i in range(rounds):
        victim = next(iter(container))
        if isinstance(container, dict):
            del container[victim]
            if compacting:
                heap.compact(container)
            container[f"m{nxt}"] = i
        else:
            container.discard(victim)
            if compacting:
                heap.compact(container)
            container.add(f"m{nxt}")
        nxt += 1
        sizes.append(sys.getsizeof(container))
    return sorted(sizes)[len(sizes) // 2]


def test_compact_keeps_churned_containers_near_their_fresh_size():
    import sys

    for make in (lambda n: {f"m{i}" for i in range(n)},
                 lambda n: {f"m{i}": i for i in range(n)}):
        fresh = sys.getsizeof(make(60))
        churned = _churn(make(60), 5000, compacting=False)
        compacted = _churn(make(60), 5000, compacting=True)
        assert churned > 1.5 * fresh  # what CPython does on its own
        assert compacted <= 1.5 * fresh


def test_compact_rebuilds_in_place_and_keeps_dict_order():
    d = {f"k{i}": i for i in range(1000)}
    for i in range(0, 1000, 2):
        del d[f"k{i}"]
    for i in range(1, 900, 2):
        del d[f"k{i}"]
    same, before = d, list(d.items())
    assert heap.compact(d) is True
    assert d is same and list(d.items()) == before
    assert heap.compact(d) is False  # now tight
    s = set(range(1000))
    s -= set(range(990))
    assert heap.compact(s) is True and s == set(range(990, 1000))
    assert heap.compact(set()) is False and heap.compact({}) is False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=300))
def test_compact_never_changes_what_a_container_holds(ops):
    s, d, ref_s, ref_d = set(), {}, set(), {}
    for add, key in ops:
        if add:
            s.add(key), ref_s.add(key)
            d[key] = ref_d[key] = key * 2
        else:
            s.discard(key), ref_s.discard(key)
            d.pop(key, None), ref_d.pop(key, None)
            heap.compact(s), heap.compact(d)
    assert s == ref_s and list(d.items()) == list(ref_d.items())


def test_compact_leaves_subclasses_alone():
    from collections import Counter, defaultdict

    for container in (Counter({i: 1 for i in range(1000)}), defaultdict(int, {i: 1 for i in
                                                                              range(1000)})):
        for i in range(990):
            del container[i]
        assert heap.compact(container) is False and len(container) == 10


def test_tune_gc_freezes_what_is_loaded_and_raises_the_young_threshold():
    """In a fresh interpreter: the collector state is the process's, not the test's to change."""
    code = ("import gc; from calico.felix import heap; heap.tune_gc(); "
            "print(gc.get_threshold(), gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.split() == ["(50000,", "20,", "10)", "True"]
