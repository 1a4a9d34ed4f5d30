"""The client's address, taking ``X-Forwarded-For`` only from a trusted proxy."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address


def resolve_client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: Sequence[IPv4Network | IPv6Network],
) -> str | None:
    """Walk ``X-Forwarded-For`` from the right while the hop is a trusted proxy.

    Each proxy appends the address it received from, so the rightmost entry not
    belonging to our own proxies is the client; anything left of it is whatever
    the client chose to send and cannot be believed.
    """
    # Cheap checks first: most deployments trust no proxy, and parsing the peer's
    # address on every request would buy nothing.
    if peer is None or not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        if not _is_valid(hop):
            break
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def _is_valid(address: str) -> bool:
    try:
        ip_address(address)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)
