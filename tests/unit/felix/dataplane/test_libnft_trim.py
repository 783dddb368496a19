"""LibNft hands libnftables' freed heap back after large calls (issue #10), without a real
libnftables: a fake library object stands in for the ctypes one."""

from __future__ import annotations

import pytest

from calico.felix.dataplane.nft import libnft


class FakeLib:
    def __init__(self, output: bytes = b"") -> None:
        self.scripts: list[bytes] = []
        self.output = output

    def nft_ctx_new(self, flags):
        return 1

    def nft_ctx_buffer_output(self, ctx):
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


def test_a_churn_sized_transaction_trims_once(trims):
    nft = libnft.LibNft(FakeLib())
    script = "add element inet calico s { 10.0.0.1 }\n" * 2000  # ~80 KB, as under churn
    assert len(script) > libnft.TRIM_BYTES
    nft.run(script)
    assert trims == [1]


def test_a_large_output_trims(trims):
    nft = libnft.LibNft(FakeLib(output=b"x" * (libnft.TRIM_BYTES + 1)))
    ok, out, _ = nft.run("list table inet calico")
    assert ok and len(out) == libnft.TRIM_BYTES + 1
    assert trims == [1]


def test_with_a_namespace_thread_the_trim_runs_there_after_the_call(trims, monkeypatch):
    monkeypatch.setattr(libnft, "enter_netns", lambda name: None)
    nft = libnft.LibNft(FakeLib(), netns="test")
    try:
        nft.run("x" * (libnft.TRIM_BYTES + 1))
    finally:
        nft.close()  # waits for the queued trim
    assert trims == [1]
