"""The verdict cache (nft/verdict_cache.py): its rules in the skeleton, and the generation and
epoch protocol of NftDataplane, with a fake nft runner and a fake conntrack reset."""

import copy
import re

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.nft import NftDataplane
from calico.felix.dataplane.nft import endpoints as ep
from calico.felix.dataplane.nft import verdict_cache as vc
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.nft.rules import Marks
from tests.unit.felix.dataplane.test_nft_managers import P1, FakeRunner, wep

M = Marks()
HIT = "ct mark & 0xffff0000 @cache-generation jump cache-hit"
STORE = ("ct mark & 0x0000ffff == 0 meta mark & 0x00080000 == 0 "
         "ct mark set meta nfproto map @cache-store")


def test_forward_chain_checks_the_cache_after_conntrack_and_stores_at_its_end():
    cfg = NftConfig.from_mapping({"InterfacePrefix": "cali,tap"})
    chains = ep.static_chains(cfg, M, hep_maps=frozenset(), verdict_cache=True)
    fwd = chains["filter-forward"].rules
    assert fwd[:3] == ("ct state established,related accept", "ct state invalid drop", HIT)
    assert fwd[3].startswith("meta mark set meta mark & ")  # marks cleared after the hit
    assert fwd[-1] == STORE
    # A hit is accepted unless the path has a workload interface without an endpoint.
    assert chains[vc.CHAIN].rules == (
        'iifname "cali*" iifname != @wl-from return', 'oifname "cali*" oifname != @wl-to return',
        'iifname "tap*" iifname != @wl-from return', 'oifname "tap*" oifname != @wl-to return',
        "accept")
    # Input and output are not cached.
    assert not any("ct mark" in r for name in ("filter-input", "filter-output")
                   for r in chains[name].rules)


def test_no_cache_with_forward_host_endpoint_policy_or_when_off():
    cfg = NftConfig()
    for hep_maps, on in ((frozenset({"hep-fwd-from"}), True),
                         (frozenset({"hep-fwd-to"}), True), (frozenset(), False)):
        chains = ep.static_chains(cfg, M, hep_maps=hep_maps, verdict_cache=on)
        assert vc.CHAIN not in chains
        assert not any("ct mark" in r for r in chains["filter-forward"].rules)


def test_raw_and_prednat_chains_only_with_their_host_endpoint_policies():
    cfg = NftConfig()
    bare = ep.static_chains(cfg, M, hep_maps=frozenset())
    assert not {"raw-prerouting", "raw-output", "prednat"} & bare.keys()
    assert not any("untracked" in r for c in bare.values() for r in c.rules)
    untracked = ep.static_chains(cfg, M, hep_maps=frozenset({"hep-untracked-from"}))
    assert "raw-prerouting" in untracked and not {"raw-output", "prednat"} & untracked.keys()
    assert untracked["filter-forward"].rules[0].startswith("ct state untracked")
    prednat = ep.static_chains(cfg, M, hep_maps=frozenset({"hep-prednat-from"}))
    assert "iifname vmap @hep-prednat-from" in prednat["prednat"].rules
    assert "raw-prerouting" not in prednat


def test_generation_wraps_to_a_new_epoch_and_lives_in_elements():
    assert vc.next_generation(None) is None
    assert vc.next_generation(1) == 2
    assert vc.next_generation(vc.MAX_GENERATION) is None
    assert vc.elements(5) == (["0x00050000"], {"ipv4": "0x00050000"})
    assert vc.elements(None) == ([], {})


class Resets:
    def __init__(self, runner: FakeRunner, fail: int = 0) -> None:
        self.runner, self.fail, self.calls = runner, fail, []

    def __call__(self, mask: int) -> int:
        self.calls.append((mask, len(self.runner.scripts)))
        if self.fail:
            self.fail -= 1
            raise OSError(1, "Operation not permitted")
        return 3


def generation_in(script: str) -> int | None:
    """The generation a script gives the cache's set and map (None: it gives none)."""
    found = {int(v, 16) >> 16 for v in re.findall(
        r"add (?:set|map) inet calico cache-(?:generation|store) \{[^}]*elements = "
        r"\{ (?:ipv4 : )?(0x[0-9a-f]+) \}", script)}
    assert len(found) <= 1, found
    return found.pop() if found else None


@pytest.fixture
def cached():
    runner = FakeRunner()
    resets = Resets(runner)
    dp = NftDataplane(runner, reset_marks=resets)
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.ALLOW),)))
    dp.on_message(wep())
    return dp, runner, resets


def test_start_commits_with_the_cache_off_then_resets_then_turns_it_on(cached):
    dp, runner, resets = cached
    dp.apply()
    assert len(runner.scripts) == 2
    off, on = runner.scripts
    assert "ct mark" not in off and generation_in(off) is None  # the whole table, no cache
    assert resets.calls == [(vc.GEN_MASK, 1)]  # between the two transactions
    assert generation_in(on) == 1 and HIT in on and STORE in on
    assert "add chain inet calico cache-hit" in on
    assert dp.generation == 1


def test_every_change_moves_the_generation_in_the_same_transaction(cached):
    dp, runner, _ = cached
    dp.apply()
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.DENY),)))
    script = dp.apply()
    assert "drop" in script and generation_in(script) == 2
    assert "filter-forward" not in script  # the rules stay: only elements change
    assert dp.generation == 2
    assert dp.apply() == "" and dp.generation == 2  # nothing changed: no new generation
    dp.on_message(m.IPSetUpdate("s9", m.IPSetType.NET, frozenset({"10.1.0.1"})))
    script = dp.apply()
    assert "s4-" in script and generation_in(script) == 3
    assert "add rule" not in script  # an IP-set change stays a transaction of elements


def test_the_last_generation_starts_a_new_epoch(cached):
    dp, runner, resets = cached
    dp.apply()
    dp.generation = vc.MAX_GENERATION - 1
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.DENY),)))
    dp.apply()
    assert dp.generation == vc.MAX_GENERATION
    assert generation_in(runner.scripts[-1]) == vc.MAX_GENERATION
    before = len(runner.scripts)
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.ALLOW),)))
    dp.apply()
    off, on = runner.scripts[before:]
    assert "accept" in off and "delete chain inet calico cache-hit" in off
    assert "flush set inet calico cache-generation" in off or \
        "delete element inet calico cache-generation" in off
    assert resets.calls[-1] == (vc.GEN_MASK, before + 1)
    assert generation_in(on) == 1 and HIT in on


def test_a_failed_reset_leaves_the_cache_off_and_is_retried(cached):
    dp, runner, resets = cached
    resets.fail = 1
    dp.apply()
    assert len(runner.scripts) == 1 and dp.generation is None
    assert "ct mark" not in runner.scripts[0]
    dp.apply()  # nothing else changed: the retry alone turns the cache on
    assert len(resets.calls) == 2 and dp.generation == 1


def test_a_failed_transaction_keeps_the_kernel_generation(cached):
    dp, runner, _ = cached
    dp.apply()
    runner.fail_next = True
    runner.table_json = None
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.DENY),)))
    dp.apply()  # fails once, re-reads the kernel, retries
    assert dp.generation == 2


class KernelRunner(FakeRunner):
    """Reads back a given kernel state (what a previous Felix process committed)."""

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def read_kernel(self, family: str, name: str, *, believed=None):
        return copy.deepcopy(self.kernel)


def test_a_restart_continues_the_kernels_generation_and_writes_nothing(cached):
    dp, _, _ = cached
    dp.apply()
    policy = m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.DENY),))
    dp.on_message(policy)
    dp.apply()
    assert dp.generation == 2
    runner = KernelRunner(dp.table.kernel)
    resets = Resets(runner)
    restarted = NftDataplane(runner, reset_marks=resets)
    for msg in (policy, wep()):
        restarted.on_message(msg)
    assert restarted.apply() == ""
    assert restarted.generation == 2 and resets.calls == []
    restarted.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.ALLOW),)))
    assert generation_in(restarted.apply()) == 3


def test_adopt_needs_the_set_and_the_map_to_agree():
    assert vc.adopt({"0x00070000": None}, {"ipv4": "0x00070000"}) == 7
    for gen, store in (({}, {}), ({"0x00070000": None}, {"ipv4": "0x00080000"}),
                       ({"0x00070000": None, "0x00080000": None}, {"ipv4": "0x00070000"}),
                       ({"0x00000000": None}, {"ipv4": "0x00000000"}), (None, None)):
        assert vc.adopt(gen, store) is None
