"""LibNft hands libnftables' freed heap back after large calls (issue #10), without a real
libnftables: a fake library object stands in for the ctypes one."""

from __future__ import annotations

import threading

import pytest

from calico.felix.dataplane.nft import libnft


class FakeLib:
    def __init__(self, output: bytes = b"") -> None:
        self.scripts: list[bytes] = []
        self.output = output
        self.rebuffered = 0

    def nft_ctx_new(self, flags):
        return 1

    def nft_ctx_buffer_output(self, ctx):
        return 0

    def nft_ctx_unbuffer_output(self, ctx):
        self.rebuffered += 1
        return 0

    def nft_ctx_buffer_error(self, ctx):
        return 0

    def nft_ctx_output_set_flags(self, ctx, flags):
        pass

    def nft_run_cmd_from_buffer(self, ctx, script):
        self.scripts.append(script)
        return 0

    def nft_ctx_get_output_buffer(self, ctx):
        return self.output

    def nft_ctx_get_error_buffer(self, ctx):
        return b""

    def nft_ctx_free(self, ctx):
        pass


@pytest.fixture
def trims(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(libnft, "_malloc_trim", lambda: calls.append(1))
    return calls


def test_small_calls_do_not_trim(trims):
    nft = libnft.LibNft(FakeLib())
    for _ in range(100):
        assert nft.run("add rule inet calico c accept\n") == (True, "", "")
    nft.close()  # waits for anything queued
    assert trims == []


def test_a_churn_sized_transaction_trims_after_itself_and_the_next_call(trims):
    lib = FakeLib()
    nft = libnft.LibNft(lib)
    script = "add element inet calico s { 10.0.0.1 }\n" * 2000  # ~80 KB, as under churn
    assert len(script) > libnft.TRIM_BYTES
    nft.run(script)
    nft.run("add rule inet calico c accept\n")  # libnftables drops its cache in this one
    for _ in range(10):
        nft.run("add rule inet calico c accept\n")
    nft.close()
    assert trims == [1, 1]
    assert lib.rebuffered == 0  # the output was small


def test_a_large_output_trims_and_starts_a_fresh_output_buffer(trims):
    lib = FakeLib(output=b"x" * (libnft.TRIM_BYTES + 1))
    nft = libnft.LibNft(lib)
    ok, out, _ = nft.run("list table inet calico")
    assert ok and len(out) == libnft.TRIM_BYTES + 1
    lib.output = b""
    nft.run("add rule inet calico c accept\n")
    nft.close()
    assert trims == [1, 1]
    assert lib.rebuffered == 1


def test_calls_run_on_the_librarys_thread_in_its_namespace(monkeypatch):
    entered, threads = [], []
    monkeypatch.setattr(libnft, "enter_netns", entered.append)
    lib = FakeLib()
    run = lib.nft_run_cmd_from_buffer
    lib.nft_run_cmd_from_buffer = lambda ctx, script: (
        threads.append(threading.current_thread().name), run(ctx, script))[1]
    for netns, name in (("test", "libnft-test"), (None, "libnft")):
        nft = libnft.LibNft(lib, netns=netns)
        nft.run("add rule inet calico c accept\n")
        nft.close()
        assert threads[-1] == name
    assert entered == ["test"]


def test_a_closed_context_refuses_calls():
    nft = libnft.LibNft(FakeLib())
    nft.close()
    with pytest.raises(OSError, match="closed"):
        nft.run("add rule inet calico c accept\n")
