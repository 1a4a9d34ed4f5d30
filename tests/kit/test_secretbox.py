from __future__ import annotations

import pytest

from tradecast.kit.secretbox import SecretBox, SecretBoxError, generate_secret

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40


def test_sealed_secret_opens_only_in_its_own_context() -> None:
    box = SecretBox(NEW)
    sealed = box.seal("s3cret", context="device-1")
    assert "s3cret" not in sealed
    assert box.open(sealed, context="device-1") == "s3cret"
    # A sealed value copied onto another row does not open there.
    with pytest.raises(SecretBoxError):
        box.open(sealed, context="device-2")


def test_tampered_or_foreign_values_do_not_open() -> None:
    box = SecretBox(NEW)
    sealed = box.seal("s3cret", context="c")
    version, payload = sealed.split(":")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    with pytest.raises(SecretBoxError):
        box.open(f"{version}:{flipped}", context="c")
    with pytest.raises(SecretBoxError, match="unknown key version"):
        box.open(SecretBox(OLD).seal("s3cret", context="c"), context="c")


def test_previous_keys_open_old_seals_and_report_them_for_resealing() -> None:
    old_seal = SecretBox(OLD).seal("s3cret", context="c")
    rotated = SecretBox(NEW, (OLD,))
    assert rotated.open(old_seal, context="c") == "s3cret"
    assert rotated.needs_reseal(old_seal)
    assert not rotated.needs_reseal(rotated.seal("s3cret", context="c"))


def test_generated_secrets_carry_256_bits() -> None:
    secrets = {generate_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(secret) >= 43 for secret in secrets)
