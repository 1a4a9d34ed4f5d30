"""Mail domains anyone can sign up with.

Two accounts on such a domain say nothing about who owns them, so sharing one
never flags a referral; sharing any other domain (a company's, a person's own)
within ``SELF_REFERRAL_WINDOW_S`` does.
"""

from __future__ import annotations

import re

PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
        "tutanota.com",
        "tuta.io",
        "zoho.com",
        "mail.com",
        "fastmail.com",
        "hey.com",
        "mail.ru",
        "inbox.ru",
        "list.ru",
        "bk.ru",
        "rambler.ru",
        "ya.ru",
        "web.de",
        "t-online.de",
        "freenet.de",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "virgilio.it",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
        "daum.net",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "interia.pl",
        "ukr.net",
        "rediffmail.com",
    }
)

# Providers with one domain per country: gmx.de, gmx.net, yandex.ru, yahoo.co.uk, ...
PUBLIC_MAIL_FAMILIES = frozenset({"gmx", "yandex", "yahoo", "hotmail", "outlook", "live"})
# What may follow a family name: a top-level domain, or a country's second level (co.uk).
_COUNTRY_SUFFIX = re.compile(r"[a-z]{2,3}(\.[a-z]{2})?")


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def is_public_mail_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    if domain in PUBLIC_MAIL_DOMAINS:
        return True
    family, _, suffix = domain.partition(".")
    return family in PUBLIC_MAIL_FAMILIES and _COUNTRY_SUFFIX.fullmatch(suffix) is not None
