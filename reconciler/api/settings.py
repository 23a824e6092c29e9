"""Where the Crayon API is, who we are to it, and how long to keep trying.

``ApiSettings`` reads the CRAYON_* and RECONCILER_*_TIMEOUT variables and
checks the base URL; ``RetryPolicy`` bounds the retries of one call; the
endpoint paths are the API's. This module must not import ``requests``, must
never let a secret (client secret, password) into a message or a repr, and
must never accept a URL that would send credentials in clear text to another
machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import ConfigurationError

#: Read by ``ApiSettings.from_env`` at call time; tests patch it here.
DEFAULT_API_URL: Final = "https://api.crayon.com"
URL_VARIABLE: Final = "CRAYON_API_URL"
CREDENTIAL_VARIABLES: Final = (
    "CRAYON_CLIENT_ID",
    "CRAYON_CLIENT_SECRET",
    "CRAYON_USERNAME",
    "CRAYON_PASSWORD",
)
#: Optional timeouts in seconds; the defaults are ApiSettings' own.
TIMEOUT_VARIABLES: Final = ("RECONCILER_CONNECT_TIMEOUT", "RECONCILER_READ_TIMEOUT")

TOKEN_PATH: Final = "/api/v1/connect/token"
VERIFY_PATH: Final = "/api/v1/purchaserequest/verify"
CHECKOUT_PATH: Final = "/api/v1/purchaserequest/checkout"
LEGACY_VERIFY_PATH: Final = "/api/v1/assets/verify"
LEGACY_CHECKOUT_PATH: Final = "/api/v1/assets/checkout"
ORDERS_PATH: Final = "/api/v1/purchaserequest/orders/"
SUBSCRIPTIONS_PATH: Final = "/api/v1/subscriptions/"
ASSET_ORDERS_PATH: Final = "/api/v1/assets/orders/"
AGREEMENT_PRODUCTS_PATH: Final = "/api/v1/agreementproducts/"


def subscription_path(subscription_id: int) -> str:
    """The path of one subscription (GET reads it, PUT updates it)."""
    if isinstance(subscription_id, bool) or not isinstance(subscription_id, int):
        raise TypeError(f"a subscription id is an integer, not {subscription_id!r}")
    return f"{SUBSCRIPTIONS_PATH}{subscription_id}"


_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and who we are; secrets stay out of the repr."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    legacy_endpoints: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _checked_base_url(self.base_url))
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigurationError("API timeouts must be positive numbers of seconds")

    @property
    def verify_path(self) -> str:
        return LEGACY_VERIFY_PATH if self.legacy_endpoints else VERIFY_PATH

    @property
    def checkout_path(self) -> str:
        return LEGACY_CHECKOUT_PATH if self.legacy_endpoints else CHECKOUT_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, legacy_endpoints: bool = False) -> ApiSettings:
        """Read the CRAYON_* variables; every missing one is named, no value ever shown."""
        problems: list[str] = []
        missing = [name for name in CREDENTIAL_VARIABLES if not env.get(name, "").strip()]
        if missing:
            noun = "variable" if len(missing) == 1 else "variables"
            problems.append(f"missing environment {noun}: {', '.join(missing)}")
        for name in CREDENTIAL_VARIABLES:
            try:
                env.get(name, "").encode("utf-8")
            except UnicodeEncodeError:
                # Bytes that are not UTF-8 reach os.environ as lone surrogates; they
                # can be sent neither in the Basic header nor in the token form.
                problems.append(f"{name} is not valid UTF-8 text")
        url = env.get(URL_VARIABLE, "").strip() or DEFAULT_API_URL
        try:
            url = _checked_base_url(url)
        except ConfigurationError as error:
            problems.append(str(error))
        timeouts: dict[str, float] = {}
        for name, setting in zip(
            TIMEOUT_VARIABLES, ("connect_timeout", "read_timeout"), strict=True
        ):
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                timeouts[setting] = float(text)
            except ValueError:
                timeouts[setting] = -1.0
            if not 0 < timeouts[setting] < float("inf"):
                problems.append(f"{name} must be a positive number of seconds, not {text!r}")
        if problems:
            raise ConfigurationError("; ".join(problems))
        return cls(
            base_url=url,
            client_id=env["CRAYON_CLIENT_ID"].strip(),
            client_secret=env["CRAYON_CLIENT_SECRET"],
            username=env["CRAYON_USERNAME"].strip(),
            password=env["CRAYON_PASSWORD"],
            legacy_endpoints=legacy_endpoints,
            **timeouts,
        )


def _checked_base_url(url: str) -> str:
    """The normalised base URL, or ConfigurationError (never echoing credentials)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ConfigurationError(f"{URL_VARIABLE} must be an https:// URL")
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"{URL_VARIABLE} must not contain credentials; use CRAYON_USERNAME and CRAYON_PASSWORD"
        )
    try:
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise ConfigurationError(f"{URL_VARIABLE} has an invalid host or port") from None
    if not host:
        raise ConfigurationError(f"{URL_VARIABLE} has no host")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{URL_VARIABLE} must not have a query or fragment")
    if scheme == "http" and not _is_loopback(host):
        raise ConfigurationError(
            f"{URL_VARIABLE}: plain http:// is allowed only for a loopback host "
            f"(127.0.0.1, ::1, localhost), not {host}; use https://"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one call: attempts, per-delay and total seconds.

    Before retry ``n`` the client waits a delay drawn from
    ``[0, min(max_delay, base_delay * 2**(n-1))]`` (full jitter), or the
    server's Retry-After capped at ``max_delay``.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_total) < 0:
            raise ValueError("retry delays must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The longest backoff before the retry that follows attempt ``attempt``."""
        return min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))

    def capped(self, retry_after: float) -> float:
        """The server's Retry-After, within ``[0, max_delay]``."""
        return min(max(retry_after, 0.0), self.max_delay)
