from __future__ import annotations

from ipaddress import ip_network

import pytest

from tradecast.kit.client_ip import resolve_client_ip

PROXIES = (ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # No trusted proxies configured: the header is ignored.
        ("198.51.100.1", "1.2.3.4", "198.51.100.1"),
        # A trusted proxy vouches for the hop it received from.
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        # A chain of our own proxies is walked until the first outside address.
        ("10.0.0.5", "203.0.113.9, 10.0.0.7", "203.0.113.9"),
        # Whatever the client wrote left of that is not believed.
        ("10.0.0.5", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        # Garbage stops the walk at the last good hop.
        ("10.0.0.5", "nonsense", "10.0.0.5"),
        ("10.0.0.5", "", "10.0.0.5"),
        (None, "1.2.3.4", None),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str | None, forwarded: str, expected: str | None
) -> None:
    trusted = PROXIES if peer and peer.startswith("10.") else ()
    assert resolve_client_ip(peer, forwarded, trusted) == expected


def test_untrusted_peer_cannot_spoof_its_address() -> None:
    assert resolve_client_ip("198.51.100.1", "10.0.0.1", PROXIES) == "198.51.100.1"
