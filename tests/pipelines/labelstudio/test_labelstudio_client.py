"""Where the review finds its server: explicit arguments first, then the environment."""

from __future__ import annotations

import pytest

from pipelines.labelstudio.client import settings_from_env


@pytest.mark.parametrize(
    "env, args, expected",
    [
        ({}, (None, None), (None, None)),
        ({"LABEL_STUDIO_URL": "http://ls", "LABEL_STUDIO_API_KEY": "k"}, (None, None), ("http://ls", "k")),
        ({"LABEL_STUDIO_URL": "http://ls", "LABEL_STUDIO_USER_TOKEN": "u"}, (None, None), ("http://ls", "u")),
        ({"LABEL_STUDIO_API_KEY": "k", "LABEL_STUDIO_USER_TOKEN": "u"}, (None, None), (None, "k")),
        ({"LABEL_STUDIO_URL": "http://ls", "LABEL_STUDIO_API_KEY": "k"}, ("http://mine", "t"), ("http://mine", "t")),
    ],
)
def test_settings_prefer_arguments_then_api_key_then_user_token(monkeypatch, env, args, expected):
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_USER_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert settings_from_env(*args) == expected
