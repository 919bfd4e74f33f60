"""Is a peer one of the networks trusted for something (accept_proxy, forwardfor)?"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from node.config.model import Network


def is_trusted(client_ip: str | None, trusted: Sequence[Network]) -> bool:
    if not client_ip or not trusted:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in trusted)
