"""The supervisor with fake processes and a fake clock: start order, readiness, restart
back-off, stop."""

import subprocess

from calico.node.main import child_specs
from calico.node.supervisor import ChildSpec, Supervisor, describe_exit


class FakeProc:
    pids = iter(range(100, 10_000))

    def __init__(self, argv, env=None):
        self.argv, self.pid, self.code, self.signals = argv, next(self.pids), None, []

    def poll(self):
        return self.code

    def terminate(self):
        self.signals.append("TERM")
        self.code = -15

    def kill(self):
        self.signals.append("KILL")
        self.code = -9

    def wait(self, timeout=None):
        if self.code is None:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        return self.code


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(specs, **kw):
    procs = []

    def popen(argv, env=None):
        p = FakeProc(argv, env)
        procs.append(p)
        return p

    clock = Clock()
    return Supervisor(specs, popen=popen, clock=clock, **kw), procs, clock


def test_starts_in_order_and_waits_for_ready():
    ready = {"ok": False}
    sup, procs, clock = make([ChildSpec("a", ["a"]),
                              ChildSpec("b", ["b"], ready=lambda: ready["ok"])])
    sup.step()
    assert [p.argv for p in procs] == [["a"]]
    ready["ok"] = True
    sup.step()
    assert [p.argv for p in procs] == [["a"], ["b"]]


def test_restart_with_doubling_backoff_reset_when_stable():
    sup, procs, clock = make([ChildSpec("a", ["a"])], backoff_min=1, backoff_max=4,
                             stable_after=30)
    sup.step()
    delays = []
    for _ in range(4):
        procs[-1].code = 1
        clock.now += 0.5
        sup.step()  # reaps; not restarted yet
        n = len(procs)
        start = clock.now
        while len(procs) == n:
            clock.now += 0.25
            sup.step()
        delays.append(clock.now - start)
    assert delays == [1.0, 2.0, 4.0, 4.0]
    assert sup.child("a").history == [1, 1, 1, 1]
    clock.now += 31  # a long, healthy run resets the back-off
    procs[-1].code = 2
    sup.step()
    assert sup.child("a").backoff == 1


def test_stop_terminates_in_reverse_order_and_kills_stragglers():
    sup, procs, clock = make([ChildSpec("a", ["a"]), ChildSpec("b", ["b"])], kill_after=0.01)
    sup.step()
    procs[0].terminate = lambda: procs[0].signals.append("TERM")  # a ignores SIGTERM
    sup.stop_children()
    assert procs[1].signals == ["TERM"]
    assert procs[0].signals == ["TERM", "KILL"]


def test_start_failure_is_retried():
    calls = []

    def popen(argv, env=None):
        calls.append(argv)
        raise FileNotFoundError(2, "No such file", argv[0])

    clock = Clock()
    sup = Supervisor([ChildSpec("x", ["x"])], popen=popen, clock=clock, backoff_min=1)
    sup.step()
    sup.step()
    assert len(calls) == 1
    clock.now = 1.0
    sup.step()
    assert len(calls) == 2


def test_describe_exit():
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "killed by SIGKILL"


def test_child_specs(tmp_path):
    specs = child_specs("h1", str(tmp_path), felix=False, env={})
    assert [s.name for s in specs] == ["tunnel-addrs", "bgp-daemon", "bird"]
    bird = specs[2]
    assert bird.argv[:7] == ["bird", "-f", "-R", "-c", f"{tmp_path}/bird.conf", "-s",
                             f"{tmp_path}/bird.ctl"]  # -R: graceful-restart recovery
    assert not bird.ready()
    (tmp_path / "bird.conf").write_text("")
    assert bird.ready()
    assert specs[1].env["NODENAME"] == "h1"
    assert [s.name for s in child_specs("h1", str(tmp_path), felix=False, bgp=False,
                                        env={})] == ["tunnel-addrs"]


def test_step_can_start_one_child_ahead_of_the_others():
    sup, procs, clock = make([ChildSpec("a", ["a"]), ChildSpec("bird", ["bird"])])
    sup.step(only=("bird",))
    assert [p.argv for p in procs] == [["bird"]]
    sup.step()
    assert [p.argv for p in procs] == [["bird"], ["a"]]


def test_sigterm_during_start_up_stops_the_early_bird(tmp_path, monkeypatch):
    """calico-node starts BIRD before it registers the Node; a SIGTERM meanwhile must stop
    that BIRD on the way out, not orphan it."""
    import os
    import signal
    import time

    from click.testing import CliRunner

    import calico.node.main as node_main

    (tmp_path / "bird.conf").write_text("")
    started, stopped = [], []
    monkeypatch.setattr(node_main.Supervisor, "_start",
                        lambda self, c, now: started.append(c.spec.name))
    monkeypatch.setattr(node_main.Supervisor, "stop_children",
                        lambda self: stopped.append([c.spec.name for c in self.children]))

    def start_up(hostname, run_dir):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("not interrupted")

    monkeypatch.setattr(node_main, "_start_up", start_up)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = CliRunner().invoke(node_main.main, ["--hostname", "h1", "--run-dir",
                                                     str(tmp_path), "--no-felix"])
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert started == ["bird"]  # only BIRD starts ahead of registration
    assert stopped == [["tunnel-addrs", "bgp-daemon", "bird"]]
