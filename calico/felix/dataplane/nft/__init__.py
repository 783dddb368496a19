"""Felix's nftables dataplane: managers → desired Table → one `nft -f` transaction.

Entry point: `NftDataplane` (dataplane.py). Pure parts: rules.py, endpoints.py (rendering),
table.py (diff), readback.py (kernel JSON → state); runner.py is the only I/O.
"""

from calico.felix.dataplane.nft.dataplane import NftDataplane
from calico.felix.dataplane.nft.runner import NftError, NftRunner

__all__ = ["NftDataplane", "NftError", "NftRunner"]
