"""kit/signing.py against docs/signing-vectors.json, the vectors integrators port against.

Each expected value is recomputed here from first principles (RFC 3986 encoding
written out, hashlib, hmac), so a change to the signing code or to a vector fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tradecast.kit import signing

VECTORS_FILE = Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def rfc3986(text: str) -> str:
    return "".join(
        chr(byte) if byte in UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8")
    )


def independent_canonical_query(pairs: list[list[str]]) -> str:
    encoded = sorted((rfc3986(name), rfc3986(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def by_name(vector: dict[str, Any]) -> str:
    return str(vector["name"])


@pytest.fixture(params=VECTORS, ids=by_name)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = request.param
    return value


def test_vectors_cover_the_cases_integrators_get_wrong() -> None:
    bodies = [vector["body"] for vector in VECTORS]
    queries = [vector["query"] for vector in VECTORS]
    everything = json.dumps(queries, ensure_ascii=False)
    assert "" in bodies
    assert any(body.startswith("{") and not body.isascii() for body in bodies)
    assert any(
        [pair[0] for pair in query] != sorted(pair[0] for pair in query) for query in queries
    )
    assert any(len({pair[0] for pair in query}) < len(query) for query in queries)
    for needs_encoding in (" ", "+", "/", "é", "€"):
        assert needs_encoding in everything


def test_canonical_query(vector: dict[str, Any]) -> None:
    pairs = [(name, value) for name, value in vector["query"]]
    assert independent_canonical_query(vector["query"]) == vector["canonical_query"]
    assert signing.canonical_query(pairs) == vector["canonical_query"]


def test_canonical_query_from_the_wire_in_the_order_sent(vector: dict[str, Any]) -> None:
    sent = "&".join(f"{rfc3986(name)}={rfc3986(value)}" for name, value in vector["query"])
    assert signing.canonical_query_from_string(sent) == vector["canonical_query"]


def test_body_sha256(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    assert hashlib.sha256(body).hexdigest() == vector["body_sha256"]
    assert signing.body_digest(body) == vector["body_sha256"]


def test_canonical_string(vector: dict[str, Any]) -> None:
    lines = [
        vector["method"].upper(),
        vector["path"],
        vector["canonical_query"],
        vector["timestamp"],
        vector["nonce"],
        vector["body_sha256"],
    ]
    assert "\n".join(lines) == vector["canonical_string"]
    assert not vector["canonical_string"].endswith("\n")
    assert (
        signing.canonical_string(
            vector["method"],
            vector["path"],
            vector["canonical_query"],
            vector["timestamp"],
            vector["nonce"],
            vector["body"].encode("utf-8"),
        )
        == vector["canonical_string"]
    )


def test_signature(vector: dict[str, Any]) -> None:
    expected = hmac.new(
        vector["secret"].encode("utf-8"),
        vector["canonical_string"].encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    assert expected == vector["signature"]
    assert signing.signature(vector["secret"], vector["canonical_string"]) == vector["signature"]


def test_sign_request_produces_the_four_headers(vector: dict[str, Any]) -> None:
    headers = signing.sign_request(
        key_id=vector["key_id"],
        secret=vector["secret"],
        method=vector["method"],
        path=vector["path"],
        query=[(name, value) for name, value in vector["query"]],
        body=vector["body"].encode("utf-8"),
        timestamp=int(vector["timestamp"]),
        nonce=vector["nonce"],
    )
    assert headers == {
        "X-Key-Id": vector["key_id"],
        "X-Timestamp": vector["timestamp"],
        "X-Nonce": vector["nonce"],
        "X-Signature": vector["signature"],
    }
    assert signing.NONCE_PATTERN.match(vector["nonce"])


def test_plus_on_the_wire_is_a_space_and_a_literal_plus_must_be_encoded() -> None:
    # Query strings are decoded as HTML forms decode them; clients must send %2B for "+".
    assert signing.canonical_query_from_string("note=a+b%2Bc") == "note=a%20b%2Bc"


def test_blank_values_are_kept() -> None:
    assert signing.canonical_query_from_string("flag&empty=&x=1") == "empty=&flag=&x=1"


def test_signatures_match_only_exactly() -> None:
    digest = signing.signature("secret", "canonical")
    assert signing.signatures_match(digest, digest)
    assert not signing.signatures_match(digest, digest.upper())
    assert not signing.signatures_match(digest, digest[:-1])
    assert not signing.signatures_match(digest, "é" * 64)


def _vector(name: str) -> dict[str, Any]:
    (vector,) = [vector for vector in VECTORS if vector["name"] == name]
    return vector


@pytest.mark.parametrize("name", ["poll, no body", "ack, JSON body"])
def test_worked_examples_in_the_protocol_document_match_the_vectors(name: str) -> None:
    document = (VECTORS_FILE.parent / "DEVICE_PROTOCOL.md").read_text(encoding="utf-8")
    vector = _vector(name)
    for value in ("key_id", "secret", "nonce", "body_sha256", "signature"):
        assert vector[value] in document, value
    assert vector["canonical_string"].replace("\n", "\\n") in document


def test_percent_encoding_example_in_the_protocol_document_matches_its_vector() -> None:
    document = (VECTORS_FILE.parent / "DEVICE_PROTOCOL.md").read_text(encoding="utf-8")
    assert _vector("percent-encoding")["canonical_query"] in document


def test_python_signer_in_the_protocol_document_reproduces_every_vector() -> None:
    document = (VECTORS_FILE.parent / "DEVICE_PROTOCOL.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", document, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    # Integrators copy this code; it is run here exactly as printed.
    exec(snippet, namespace)  # noqa: S102
    for vector in VECTORS:
        query, headers = namespace["sign"](
            vector["key_id"],
            vector["secret"],
            vector["method"],
            vector["path"],
            vector["query"],
            vector["body"].encode("utf-8"),
            vector["timestamp"],
            vector["nonce"],
        )
        assert query == vector["canonical_query"]
        assert headers["X-Signature"] == vector["signature"], vector["name"]
