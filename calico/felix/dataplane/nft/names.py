"""Names of the nftables objects Felix creates, derived from Calico ids.

Every name is a valid nft identifier of at most 63 characters and the mapping is injective:
an id made only of `[A-Za-z0-9.-]` (and short enough) is used as is after a kind prefix with
a `-`; anything else is replaced by a hash after the same prefix with a `_`, so the two forms
can never collide. Policy and profile chains are always hashed (their ids are long).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from calico.felix.messages import IPSetType, PolicyID, ProfileID

TABLE_FAMILY = "inet"
TABLE_NAME = "calico"
MAX_NAME = 63
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


@functools.lru_cache(maxsize=1 << 16)
def short_hash(text: str, chars: int = 20) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:chars]


def _name(prefix: str, ident: str) -> str:
    if _PLAIN.match(ident) and len(prefix) + 1 + len(ident) <= MAX_NAME:
        return f"{prefix}-{ident}"
    return f"{prefix}_{short_hash(ident)}"


def ip_set_name(set_id: str, family: int, set_type: IPSetType) -> str:
    """`s4-<id>`/`s6-<id>` for NET sets, `n4-`/`n6-` for NET_PORT (named-port) sets."""
    kind = "s" if set_type is IPSetType.NET else "n"
    return _name(f"{kind}{family}", set_id)


def literal_set_name(family: int, elements: tuple[str, ...]) -> str:
    """A content-addressed set for a rule's literal list of CIDRs (shared by equal lists)."""
    return f"l{family}_{short_hash(','.join(elements))}"


def policy_chain_name(policy: PolicyID, inbound: bool) -> str:
    return f"{'pi' if inbound else 'po'}_{short_hash(repr(policy))}"


def profile_chain_name(profile: ProfileID, inbound: bool) -> str:
    return f"{'pri' if inbound else 'pro'}_{short_hash(profile.name)}"


def endpoint_chain_name(kind: str, interface: str) -> str:
    """Per-endpoint chains: kind is tw/fw (workload), th/fh (host endpoint), thf/fhf
    (host endpoint, forwarded), thu/fhu (untracked), fhp (pre-DNAT)."""
    return _name(kind, interface)
