"""Felix's nftables dataplane: managers → desired Table → one nft transaction per apply.

Entry point: `NftDataplane` (dataplane.py). Pure parts: rules.py, endpoints.py (rendering),
table.py (diff), readback.py (kernel listing → state); runner.py and libnft.py are the only I/O.
"""

from calico.felix.dataplane.nft.dataplane import NftDataplane
from calico.felix.dataplane.nft.runner import LibNftRunner, NftError, NftRunner, make_runner

__all__ = ["LibNftRunner", "NftDataplane", "NftError", "NftRunner", "make_runner"]
