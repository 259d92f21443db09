"""Secrets kept out of messages: a service url's password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["masked_url"]


def masked_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for error messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
