"""Settings are parsed strictly: a value the console does not understand stops the start-up instead of silently
meaning something else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from console.settings import env_bool, env_number

BASE = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        (" 0 ", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_usual_spellings_of_yes_and_no_are_understood(monkeypatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("CONSOLE_PROBE", raw)
    assert env_bool("CONSOLE_PROBE", not expected) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y e s", "-1"])
def test_an_unknown_boolean_stops_the_start_up(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("CONSOLE_PROBE", raw)
    with pytest.raises(ImproperlyConfigured, match="CONSOLE_PROBE must be one of"):
        env_bool("CONSOLE_PROBE", True)


def test_an_unset_or_empty_boolean_takes_its_default(monkeypatch) -> None:
    monkeypatch.delenv("CONSOLE_PROBE", raising=False)
    assert env_bool("CONSOLE_PROBE", True) is True
    monkeypatch.setenv("CONSOLE_PROBE", "")
    assert env_bool("CONSOLE_PROBE", False) is False


@pytest.mark.parametrize("raw", ["five", "²", "1e3", "-4"])
def test_a_number_that_is_not_one_stops_the_start_up(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("CONSOLE_PROBE", raw)
    with pytest.raises(ImproperlyConfigured, match="CONSOLE_PROBE"):
        env_number("CONSOLE_PROBE", 3)


def _production(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "DJANGO_", "DATABASE_URL"))}
    script = "from django.conf import settings; print(settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS)"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        env=clean
        | {
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "CONSOLE_ENV": "production",
            "CONSOLE_SECRET_KEY": "x" * 50,
            "CONSOLE_ENCRYPTION_KEYS": "x" * 44,
            **env,
        },
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ssl_redirect_true_means_on_and_a_typo_stops_the_console() -> None:
    assert _production(CONSOLE_SSL_REDIRECT="true").stdout.split() == ["True", "31536000"]
    assert _production(CONSOLE_SSL_REDIRECT="off").stdout.split()[0] == "False"
    refused = _production(CONSOLE_SSL_REDIRECT="ture")
    assert refused.returncode != 0
    assert "CONSOLE_SSL_REDIRECT must be one of" in refused.stderr


def test_an_unknown_environment_name_stops_the_console() -> None:
    refused = _production(CONSOLE_ENV="prod")
    assert refused.returncode != 0 and "CONSOLE_ENV must be development or production" in refused.stderr


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"CONSOLE_LOCAL_LOGIN": "admins"}, "CONSOLE_LOCAL_LOGIN must be everyone, superusers or off"),
        ({"CONSOLE_LOCAL_LOGIN": "off"}, "CONSOLE_LOCAL_LOGIN=off needs single sign-on"),
        ({"CONSOLE_OIDC_ISSUER": "https://idp.example.com/realms/x"}, "needs CONSOLE_OIDC_CLIENT_ID"),
        (
            {
                "CONSOLE_OIDC_ISSUER": "https://idp.example.com",
                "CONSOLE_OIDC_CLIENT_ID": "c",
                "CONSOLE_OIDC_CLIENT_SECRET": "s",
                "CONSOLE_OIDC_RECHECK_SECONDS": "soon",
            },
            "CONSOLE_OIDC_RECHECK_SECONDS must be a int number",
        ),
    ],
)
def test_single_sign_on_settings_that_do_not_fit_stop_the_console(environment: dict, message: str) -> None:
    refused = _production(**environment)
    assert refused.returncode != 0 and message in refused.stderr
