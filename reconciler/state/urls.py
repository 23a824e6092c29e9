"""Database URLs as users may see them: every password replaced by ``***``.

Whatever libpq would read as a password is masked: the userinfo's
(``postgresql://user:SECRET@host``) and the value of every query parameter whose
key, once percent-decoded (``%70assword`` is ``password`` to libpq), contains
``password`` in any case (``password``, ``sslpassword``, ...). Masking works on
the text alone and parses nothing it does not need: no host list, no port, no
database name, so no URL a user can type fails here (``h1:5432,h2:5432``, a port
above 65535, a stray ``%``); whether the URL works is for the connection to say.

Pure string work: no I/O, no psycopg.
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

MASK = "***"
#: How many layers of percent-encoding a query key is decoded through.
_DECODINGS = 4


def mask_url(url: str) -> str:
    """``url`` with every password it carries replaced by ``***``."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    userinfo, at, after = _split_userinfo(rest)
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = (f"{user}:{MASK}" if colon else userinfo) + at + after
    # The parameters run from the first '?' on, wherever it stands: a '?' inside what
    # libpq reads as userinfo still marks what the user meant as parameters.
    before, question, query = rest.partition("?")
    if question:
        query = "&".join(_mask_parameter(p) for p in query.split("&"))
    return f"{scheme}{separator}{before}{question}{query}"


def url_secrets(url: str) -> set[str]:
    """Every password written into ``url``, as written and decoded: what must never
    appear in a message (a driver's error may quote the URL or a parameter)."""
    _, separator, rest = url.partition("://")
    if not separator:
        return set()
    found: list[str] = []
    userinfo, at, _ = _split_userinfo(rest)
    if at:
        _, colon, password = userinfo.partition(":")
        if colon:
            found.append(password)
    _, question, query = rest.partition("?")
    if question:
        for parameter in query.split("&"):
            key, equals, value = parameter.partition("=")
            if equals and _is_password_key(key):
                found.append(value)
    forms = {form for raw in found for form in (raw, unquote(raw), unquote_plus(raw))}
    return {form for form in forms if form}


def _split_userinfo(rest: str) -> tuple[str, str, str]:
    """(userinfo, "@", the rest) of what follows ``scheme://``; ("", "", "") without one.

    libpq ends the userinfo at the first '@' before the first '/'; the last one is
    taken here, which masks at least what libpq would read as the password.
    """
    slash = rest.find("/")
    head = rest if slash < 0 else rest[:slash]
    at = head.rfind("@")
    if at < 0:
        return "", "", ""
    return rest[:at], "@", rest[at + 1 :]


def _mask_parameter(parameter: str) -> str:
    key, equals, _ = parameter.partition("=")
    if equals and _is_password_key(key):
        return f"{key}={MASK}"
    return parameter


def _is_password_key(key: str) -> bool:
    """Whether a query key names a password in any encoding (``%70assword``,
    ``%2570assword``, ``PASSWORD``, ``sslpassword``)."""
    for _ in range(_DECODINGS):
        if "password" in key.lower() or "password" in unquote_plus(key).lower():
            return True
        decoded = unquote(key)
        if decoded == key:
            return False
        key = decoded
    return "password" in key.lower()
