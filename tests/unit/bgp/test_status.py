"""`birdc show protocols` parsing and `calicoctl node status` output."""

from click.testing import CliRunner

from calico.bgp.status import parse_protocols, peer_address
from calico.ctl.node import format_status, node

SHOW_PROTOCOLS = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     23:56:21.771
static_blocks4 Static     master4    up     23:56:21.771
kernel4    Kernel     master4    up     23:56:21.771
Mesh_198_18_0_12 BGP        ---        up     23:56:22.775  Established
Mesh_fd00_198_18__12 BGP        ---        start  23:56:21.771  Active        Socket: Connection refused
Global_198_18_0_1 BGP        ---        start  2024-01-15    Connect
Node_10_0_0_9 BGP        ---        down   2024-01-15 10:00:00  Error: hold timer expired
Other_1_2_3_4 BGP        ---        up     23:56:22.775  Established
"""


def test_peer_address_from_protocol_name():
    assert peer_address("10_0_0_2") == "10.0.0.2"
    assert peer_address("fd00__2") == "fd00::2"
    assert peer_address("not_an_ip") is None


def test_parse_protocols():
    peers = parse_protocols(SHOW_PROTOCOLS)
    assert [(p.address, p.type, p.state, p.since, p.info) for p in peers] == [
        ("198.18.0.12", "node-to-node mesh", "up", "23:56:22.775", "Established"),
        ("fd00:198:18::12", "node-to-node mesh", "start", "23:56:21.771",
         "Active Socket: Connection refused"),
        ("198.18.0.1", "global", "start", "2024-01-15", "Connect"),
        ("10.0.0.9", "node specific", "down", "2024-01-15 10:00:00",
         "Error: hold timer expired"),
    ]
    assert [p.established for p in peers] == [True, False, False, False]


def test_format_status_like_calico():
    text = format_status(parse_protocols(SHOW_PROTOCOLS))
    lines = text.splitlines()
    assert lines[0] == "Calico process is running."
    assert lines[2] == "IPv4 BGP status"
    assert lines[4] == ("| PEER ADDRESS |     PEER TYPE     | STATE |        SINCE        "
                        "|           INFO            |")
    assert "| 198.18.0.12  | node-to-node mesh | up    | 23:56:22.775        | Established" \
        in text
    assert "IPv6 BGP status" in text and "fd00:198:18::12" in text
    assert "No IPv6 peers found." not in text
    assert "No IPv6 peers found." in format_status([])


def test_node_status_without_bird(tmp_path):
    result = CliRunner().invoke(node, ["status", "--bird-socket", str(tmp_path / "none.ctl")])
    assert result.exit_code == 1
    assert "Calico process is not running." in result.output


def test_header_centred_as_calico():
    from calico.bgp.status import PeerStatus

    text = format_status([PeerStatus("Mesh_172_17_8_102", "172.17.8.102", "node-to-node mesh",
                                     "up", "23:30:04", "Established")])
    assert text.splitlines()[3:7] == [
        "+--------------+-------------------+-------+----------+-------------+",
        "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |",
        "+--------------+-------------------+-------+----------+-------------+",
        "| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |",
    ]


def test_parse_port_and_local_workload_names():
    text = ("Global_10_0_0_9_port_1790 BGP        ---        up     23:56:22.775  Established\n"
            "Local_Workload_10_65_0_5 BGP        ---        up     23:56:22.775  Established\n")
    assert [(p.address, p.type) for p in parse_protocols(text)] == [
        ("10.0.0.9", "global"), ("10.65.0.5", "local workload")]
