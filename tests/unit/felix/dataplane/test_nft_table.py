"""`Table.transaction()` pinned byte for byte: the script for a change touching every phase.

The phase order is the contract (every reference created before it is used, dropped before
its target); these scripts are what nft is given, so any change to them is deliberate.
"""

from calico.felix.dataplane.nft.table import BaseHook, Chain, SetSpec, Table

NET = SetSpec(("ipv4_addr",), ("interval",))
VMAP = SetSpec(("ifname",), (), "verdict")
FWD = BaseHook("filter", "forward", 0)


def _committed() -> Table:
    t = Table("inet", "calico")
    t.put_set("s4-a", NET, ["10.0.0.1", "10.0.0.2"])
    t.put_set("s4-b", NET, ["10.0.1.1"])
    t.put_set("s4-gone", NET, ["10.9.9.9"])
    t.put_set("ep-map", VMAP, {'"cali1"': "jump fw-cali1", '"cali2"': "jump fw-cali2"})
    t.put_chain("fw-cali1", Chain(("ip saddr 10.0.0.1 accept",)))
    t.put_chain("fw-cali2", Chain(("drop",)))
    t.put_chain("empty-gone", Chain())
    t.put_chain("filter-forward", Chain(("iifname vmap @ep-map",), FWD))
    t.transaction()
    t.commit()
    return t


def test_a_change_touching_every_phase_renders_in_phase_order():
    t = _committed()
    t.update_elements("s4-a", added=["10.0.0.3"], removed=["10.0.0.2"])
    t.put_set("s4-b", SetSpec(("ipv4_addr",)), ["10.0.1.1"])  # new spec: replaced
    t.remove_set("s4-gone")
    t.put_set("s4-new", NET, [])
    t.put_set("s4-full", NET, ["10.1.0.0/16", "10.2.0.1"])
    t.put_set("new-map", VMAP, {'"cali9"': "jump fw-cali1"})
    t.update_elements("ep-map", added={'"cali3"': "jump fw-cali3"}, removed=['"cali2"'])
    t.put_chain("fw-cali3", Chain(("ip saddr @s4-new accept", "drop")))
    t.remove_chain("fw-cali2")
    t.put_chain("fw-cali1", Chain(("ip saddr @s4-a accept",)))
    t.put_chain("filter-forward", Chain(("iifname vmap @ep-map",),
                                        BaseHook("filter", "forward", 10)))  # new hook
    t.remove_chain("empty-gone")
    assert t.transaction() == """\
delete set inet calico s4-b
flush chain inet calico filter-forward
delete chain inet calico filter-forward
add map inet calico new-map { type ifname : verdict; }
add set inet calico s4-b { type ipv4_addr; elements = { 10.0.1.1 } }
add set inet calico s4-full { type ipv4_addr; flags interval; elements = { 10.1.0.0/16, 10.2.0.1 } }
add set inet calico s4-new { type ipv4_addr; flags interval; }
delete element inet calico s4-a { 10.0.0.2 }
add set inet calico s4-a { type ipv4_addr; flags interval; elements = { 10.0.0.3 } }
add chain inet calico filter-forward { type filter hook forward priority 10; policy accept; }
add chain inet calico fw-cali3
flush chain inet calico fw-cali2
add rule inet calico filter-forward iifname vmap @ep-map comment "281ea7a3f6a6"
flush chain inet calico fw-cali1
add rule inet calico fw-cali1 ip saddr @s4-a accept comment "09cd39d2607c"
add rule inet calico fw-cali3 ip saddr @s4-new accept comment "2f8104112993"
add rule inet calico fw-cali3 drop comment "7ce2b09dc124"
delete element inet calico ep-map { "cali2" }
add map inet calico ep-map { type ifname : verdict; elements = { "cali3" : jump fw-cali3 } }
add map inet calico new-map { type ifname : verdict; elements = { "cali9" : jump fw-cali1 } }
delete chain inet calico empty-gone
delete chain inet calico fw-cali2
delete set inet calico s4-gone
"""
    t.commit()
    assert t.transaction() == ""


def test_a_cold_table_is_created_first_and_its_map_filled_last():
    t = Table("inet", "calico")
    t.put_set("s4-a", NET, ["10.0.0.1"])
    t.put_set("ep-map", VMAP, {'"cali1"': "jump fw-cali1"})
    t.put_chain("fw-cali1", Chain(("ip saddr @s4-a accept",)))
    t.put_chain("filter-forward", Chain(("iifname vmap @ep-map",), FWD))
    assert t.transaction() == """\
add table inet calico
add map inet calico ep-map { type ifname : verdict; }
add set inet calico s4-a { type ipv4_addr; flags interval; elements = { 10.0.0.1 } }
add chain inet calico filter-forward { type filter hook forward priority 0; policy accept; }
add chain inet calico fw-cali1
add rule inet calico filter-forward iifname vmap @ep-map comment "281ea7a3f6a6"
add rule inet calico fw-cali1 ip saddr @s4-a accept comment "09cd39d2607c"
add map inet calico ep-map { type ifname : verdict; elements = { "cali1" : jump fw-cali1 } }
"""


def test_a_large_table_flushes_and_refills_instead_of_deleting_elements():
    t = Table("inet", "calico")
    t.put_set("big", NET, [f"10.9.{i // 100}.{i % 100 * 2 + 1}" for i in range(2500)])
    t.put_set("s4-a", NET, ["10.0.0.1", "10.0.0.2"])
    t.transaction()
    t.commit()
    t.update_elements("s4-a", added=["10.0.0.3"], removed=["10.0.0.1"])
    assert t.transaction() == """\
flush set inet calico s4-a
add set inet calico s4-a { type ipv4_addr; flags interval; elements = { 10.0.0.2, 10.0.0.3 } }
"""
