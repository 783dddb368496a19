"""LibNft hands libnftables' freed heap back after large calls (issue #10), without a real
libnftables: a fake library object stands in for the ctypes one."""

from __future__ import annotations

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
    assert trims == []


def test_a_churn_sized_transaction_trims_after_itself_and_the_next_call(trims):
    lib = FakeLib()
    nft = libnft.LibNft(lib)
    script = "add element inet calico s { 10.0.0.1 }\n" * 2000  # ~80 KB, as under churn
    assert len(script) > libnft.TRIM_BYTES
    nft.run(script)
    assert trims == [1]
    nft.run("add rule inet calico c accept\n")  # libnftables drops its cache in this one
    assert trims == [1, 1]
    for _ in range(10):
        nft.run("add rule inet calico c accept\n")
    assert trims == [1, 1]
    assert lib.rebuffered == 0  # the output was small


def test_a_large_output_trims_and_starts_a_fresh_output_buffer(trims):
    lib = FakeLib(output=b"x" * (libnft.TRIM_BYTES + 1))
    nft = libnft.LibNft(lib)
    ok, out, _ = nft.run("list table inet calico")
    assert ok and len(out) == libnft.TRIM_BYTES + 1
    assert trims == [1]
    assert lib.rebuffered == 1
    lib.output = b""
    nft.run("add rule inet calico c accept\n")
    assert trims == [1, 1]


def test_with_a_namespace_thread_the_trims_run_there_after_the_calls(trims, monkeypatch):
    monkeypatch.setattr(libnft, "enter_netns", lambda name: None)
    nft = libnft.LibNft(FakeLib(), netns="test")
    try:
        nft.run("x" * (libnft.TRIM_BYTES + 1))
        nft.run("y")
        nft.run("z")
    finally:
        nft.close()  # waits for the queued trims
    assert trims == [1, 1]
