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
