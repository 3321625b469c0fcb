"""The one rule for secrets, used by every layer that holds settings.

A secret is held as a pydantic ``SecretStr`` from the moment it is read, so ``repr``, ``str``,
logs and JSON dumps show ``**********``; only the code that hands it to a client library
calls ``reveal``. In free-form client settings (``kafka_config``, later remote services'
settings) a value is secret when its key's name says so (``is_secret_name``). URLs are shown
with the password of their user-info part masked (``redact_url``).
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

MASK = "***"
SECRET_NAME_PARTS = ("password", "secret", "token", "api_key", "apikey", "key.pem", "ssl.key")
"""A setting whose lower-cased name contains one of these holds a secret."""


def is_secret_name(name: str) -> bool:
    """True for names such as ``sasl.password``, ``api_key``, ``ssl.key.pem``, ``oauth_token``."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def as_secret(value: str | SecretStr | None) -> SecretStr | None:
    """``value`` as a ``SecretStr`` (None stays None)."""
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def protect_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every value under a secret name held as a ``SecretStr``."""
    return {key: SecretStr(str(value)) if is_secret_name(key) and value is not None
            and not isinstance(value, SecretStr) else value for key, value in settings.items()}


def reveal(value: Any) -> Any:
    """The plain value for a client library: unwraps a ``SecretStr`` or a mapping's secrets."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {key: reveal(item) for key, item in value.items()}
    return value


def masked(name: str, value: Any) -> Any:
    """``value`` as it may be shown (in an error message, a listing) under the name ``name``."""
    if isinstance(value, SecretStr) or (value is not None and is_secret_name(name)):
        return MASK
    if isinstance(value, Mapping):
        return {key: masked(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked(name, item) for item in value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_url(url: str) -> str:
    """``url`` without a password in its user-info part."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a malformed URL with user-info: show none of it
        return MASK
    return urlunsplit(parts._replace(netloc=netloc))
