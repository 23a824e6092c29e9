"""The API settings (``reconciler.api.settings``) read from the environment."""

from __future__ import annotations

import pytest

from reconciler.api.settings import ApiSettings
from reconciler.errors import ConfigurationError


def test_credentials_that_are_not_utf_8_are_named_never_shown() -> None:
    env = {
        "CRAYON_API_URL": "https://api.example.com",
        "CRAYON_CLIENT_ID": "client",
        "CRAYON_CLIENT_SECRET": "s\udcffcret-value",  # os.environ's form of a non-UTF-8 byte
        "CRAYON_USERNAME": "user",
        "CRAYON_PASSWORD": "password",
    }
    with pytest.raises(ConfigurationError) as caught:
        ApiSettings.from_env(env)
    assert str(caught.value) == "CRAYON_CLIENT_SECRET is not valid UTF-8 text"
