"""VXLAN pools in the BIRD config: Felix routes them, so BIRD neither learns Felix's routes in
them from the kernel (nothing to re-advertise) nor programs BGP routes in them into it."""

from calico.bgp.render import render

from .test_render import bird_accepts, pool, three_nodes


def test_vxlan_pool_not_learned_nor_programmed(tmp_path):
    inp = three_nodes()
    inp.pools = [pool("10.65.0.0/16", vxlanMode="CrossSubnet"), pool("10.66.0.0/16"),
                 pool("fd10::/48")]
    text = render(inp)
    kernel4 = next(line for line in text.splitlines() if "import where krt_source" in line
                   and "10.66.0.0/16" in line)
    assert "&& !(net ~ [ 10.65.0.0/16+ ])" in kernel4
    assert "if source = RTS_BGP && net ~ [ 10.65.0.0/16+ ] then reject;" in text
    kernel6 = next(line for line in text.splitlines() if "import where krt_source" in line
                   and "fd10::/48" in line)
    assert "!(net" not in kernel6  # the IPv6 pool has no VXLAN
    assert "route 10.65.0.0/26 blackhole;" in text  # our own block is still advertised
    bird_accepts(text, tmp_path)


def test_no_vxlan_pool_no_change():
    text = render(three_nodes())
    assert "!(net" not in text
    assert "if source = RTS_BGP && net ~" not in text
