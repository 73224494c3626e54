from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_login_page_is_served(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b"htmx" in response.content


@pytest.mark.django_db
def test_pages_require_login(client: Client) -> None:
    response = client.get("/clusters/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_every_page_has_a_content_security_policy_without_inline_script(client: Client) -> None:
    policy = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy


@pytest.mark.django_db
def test_signed_in_pages_are_not_cached(client: Client, make_user) -> None:
    client.force_login(make_user("reader"))
    cache_control = client.get("/clusters/")["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control


@pytest.mark.django_db
def test_logout_ends_the_session_on_the_server(client: Client, make_user) -> None:
    client.force_login(make_user("leaving"))
    stolen = client.cookies["sessionid"].value
    assert client.post("/logout/").status_code == 302
    replay = Client()
    replay.cookies["sessionid"] = stolen
    assert replay.get("/clusters/").status_code == 302  # the old cookie no longer signs anyone in


def test_production_refuses_to_start_without_its_secrets(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")} | {
        "CONSOLE_ENV": "production",
        "CONSOLE_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "CONSOLE_SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_an_htmx_request_without_a_session_goes_to_the_login_page_as_a_whole_page(client: Client) -> None:
    response = client.post(
        "/clusters/local/namespaces/demo/services/create/", {"_action": "validate"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/?next=")
