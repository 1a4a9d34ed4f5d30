from __future__ import annotations

import pytest

from tradecast.affiliates.mail_domains import email_domain, is_public_mail_domain


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "GMail.com",
        "outlook.com",
        "proton.me",
        "mail.ru",
        "gmx.de",
        "gmx.net",
        "yandex.ru",
        "yandex.com.tr",
        "yahoo.co.uk",
        "hotmail.fr",
        "icloud.com",
        "gmail.com.",
    ],
)
def test_providers_anyone_can_sign_up_with_are_public(domain: str) -> None:
    assert is_public_mail_domain(domain)


@pytest.mark.parametrize(
    "domain",
    [
        "acme-trading.io",
        "example.org",
        "gmail.company.com",
        "yandex.evil-corp.com",
        "mygmx.de",
        "corp.gmail.co",
    ],
)
def test_other_domains_say_who_owns_them(domain: str) -> None:
    assert not is_public_mail_domain(domain)


def test_the_domain_is_what_follows_the_last_at_sign() -> None:
    assert email_domain('"odd@name"@Acme-Trading.IO') == "acme-trading.io"
