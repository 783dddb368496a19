"""The pure parts of benchmarks/scale_lab.py: percentile, power-law fit, birdc and etcd
metrics parsing, the ICMP echo packets, and the per-size summary the growth table fits."""

from __future__ import annotations

import struct

import pytest

from benchmarks.scale_figures import (
    echo_request,
    is_echo_reply,
    metric_sum,
    parse_prometheus,
    parse_route_count,
    percentile,
    power_law_exponent,
)
from benchmarks.scale_report import markdown, summary


def test_percentile_is_nearest_rank():
    values = [5, 1, 4, 2, 3]
    assert percentile(values, 50) == 3
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 5
    assert percentile(list(range(1, 50)), 99) == 49  # 49 samples: p99 is the largest
    assert percentile(list(range(1, 101)), 99) == 99


@pytest.mark.parametrize("values, q", [([], 50), ([1.0], 101)])
def test_percentile_refuses_nonsense(values, q):
    with pytest.raises(ValueError):
        percentile(values, q)


def test_power_law_exponent_recovers_the_power():
    ns = [10, 25, 50]
    assert power_law_exponent(ns, [3 * n ** 2 for n in ns]) == pytest.approx(2.0)
    assert power_law_exponent(ns, [7.0, 7.0, 7.0]) == pytest.approx(0.0)
    assert power_law_exponent(ns, [n / 2 for n in ns]) == pytest.approx(1.0)
    # mesh: N(N-1)/2 sessions; the fit over 10..50 is a little above 2
    assert power_law_exponent(ns, [n * (n - 1) / 2 for n in ns]) == pytest.approx(2.05,
                                                                                   abs=0.01)


def test_power_law_exponent_skips_points_it_cannot_fit():
    assert power_law_exponent([10, 25], [0.0, 5.0]) is None  # log 0: one point left
    assert power_law_exponent([10, 10], [1.0, 2.0]) is None
    assert power_law_exponent([10, 25, 50], [None, 2.0, 4.0]) == pytest.approx(1.0)


def test_route_count_of_birdc():
    text = ("BIRD 2.0.12 ready.\n"
            "57 of 57 routes for 57 networks in table master4\n"
            "0 of 0 routes for 0 networks in table master6\n"
            "Total: 57 of 57 routes for 57 networks in 2 tables\n")
    assert parse_route_count(text) == {"master4": 57, "master6": 0}
    assert parse_route_count("BIRD 2.0.12 ready.\n") == {}


ETCD_METRICS = """\
# HELP etcd_debugging_mvcc_watcher_total Total number of watchers.
# TYPE etcd_debugging_mvcc_watcher_total gauge
etcd_debugging_mvcc_watcher_total 66
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",\
grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",\
grpc_type="bidi_stream"} 2
grpc_server_handled_total{grpc_code="NotFound",grpc_method="Put",grpc_service="etcdserverpb.KV",\
grpc_type="unary"} 1e+00
process_start_time_seconds 1.7e+09
"""


def test_prometheus_text_and_sums():
    samples = parse_prometheus(ETCD_METRICS)
    assert metric_sum(samples, "etcd_debugging_mvcc_watcher_total") == 66
    assert metric_sum(samples, "grpc_server_handled_total") == 6
    assert metric_sum(samples, "grpc_server_handled_total", grpc_type="unary") == 4
    assert metric_sum(samples, "grpc_server_handled_total", grpc_code="OK",
                      grpc_method="Range") == 3
    assert metric_sum(samples, "no_such_metric") == 0


def test_prometheus_line_not_understood_is_named():
    with pytest.raises(ValueError, match="not understood: 'what is this'"):
        parse_prometheus("what is this")


def test_echo_request_checksums_and_reply_matching():
    req = echo_request(0x1234, 7)
    words = struct.unpack(f"!{len(req) // 2}H", req)
    assert sum(words) % 0xFFFF == 0  # a valid ICMP checksum sums to all ones
    assert req[0] == 8
    ip_header = bytes([0x45]) + bytes(19)
    reply = ip_header + bytes([0]) + req[1:]
    assert is_echo_reply(reply, 0x1234)
    assert not is_echo_reply(reply, 0x1235)
    assert not is_echo_reply(ip_header + req, 0x1234)  # a request, not a reply
    assert not is_echo_reply(ip_header[:10], 0x1234)


def test_summary_of_one_size():
    fig = {"up_s": 4.0, "reach": [0.2, 0.3, None], "policy": [0.01, 0.02],
           "rss": [{"felix": 50 << 20, "bird": 4 << 20}, {"felix": 52 << 20, "bird": 6 << 20}],
           "bgp": {"sessions": [2, 2, 2], "routes": [7, 7, 8]},
           "etcd": {"watchers": 66.0}}
    s = summary(fig)
    assert s["up s"] == 4.0
    assert s["new workload p99 s"] == 0.3
    assert s["policy change p50 s"] == 0.01
    assert s["RSS felix MB"] == 51
    assert s["RSS supervisor MB"] == 0
    assert s["sessions total"] == 3
    assert s["routes/host"] == pytest.approx(22 / 3)
    assert s["etcd watchers"] == 66


def test_markdown_table_has_a_column_per_size_and_the_exponent():
    def fig(n: int) -> dict:
        return {"n": n, "mode": "mesh", "ok": True, "up_s": float(n),
                "bgp": {"sessions": [n - 1] * n, "routes": [n] * n}}

    table = markdown([fig(10), fig(20), {"n": 40, "mode": "mesh", "ok": False}])
    lines = table.splitlines()
    assert lines[0] == "| figure | mesh 10 | mesh 20 | mesh b |"
    assert "| up s | 10 | 20 | 1.00 |" in lines
    assert any(line.startswith("| sessions total | 45 | 190 | 2.08 |") for line in lines)
