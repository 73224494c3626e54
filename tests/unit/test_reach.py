"""The rules of reaching a Service (``services.reach``), without a cluster: which paths are sent, which ports can
be reached, which redirects stay inside the Service's proxy path, which headers are shown."""

from __future__ import annotations

import pytest

from services import reach

PREFIX = "/api/v1/namespaces/shop/services/web:http/proxy"


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("", "/"),
        ("/", "/"),
        ("healthz", "/healthz"),
        ("/api/items?page=2&q=a b".replace(" ", "%20"), "/api/items?page=2&q=a%20b"),
        ("/文档", "/%E6%96%87%E6%A1%A3"),
        ("/a%20b/c", "/a%20b/c"),
        ("/a..b/.well-known/x", "/a..b/.well-known/x"),
        ("/search?next=../x", "/search?next=../x"),  # a query is the Service's to read
    ],
)
def test_it_sends_paths_percent_encoded(typed: str, sent: str) -> None:
    assert reach.checked_path(typed) == sent


@pytest.mark.parametrize(
    "typed",
    [
        "/..",
        "/../etc/passwd",
        "/a/../../b",
        "/./a",
        "/..%2f",
        "/..%2Fsecret",
        "/%2e%2e/x",
        "/%2E%2E",
        "/%252e%252e/x",
        "/a%2fb",
        "/a%5cb",
        "/a%252fb",
        "/a\\b",
        "http://example.com/",
        "https://10.0.0.1:6443/api",
        "//example.com/x",
        "javascript:alert(1)",
        "/a b",
        "/a\tb",
        "/a\x00b",
        "/a\r\nSet-Cookie: x=1",
        "/a#frag",
        "/bad%zz",
        "/" + "a" * 2048,
    ],
)
def test_it_refuses_paths_that_leave_the_service_or_smuggle_anything(typed: str) -> None:
    with pytest.raises(reach.BadPath):
        reach.checked_path(typed)


def test_only_tcp_ports_by_name_or_number_are_reachable() -> None:
    service = {
        "spec": {
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"port": 9000},
            ]
        }
    }
    assert reach.service_port(service, "http")["port"] == 80
    assert reach.service_port(service, "80")["name"] == "http"
    assert reach.service_port(service, "9000")["port"] == 9000
    assert reach.service_port(service, "dns") is None
    assert reach.service_port(service, "53") is None
    assert reach.service_port(service, "81") is None
    assert reach.port_key({"port": 9000}) == "9000"
    assert reach.proxy_prefix("shop", "web", {"name": "http", "port": 80}) == PREFIX


@pytest.mark.parametrize(
    ("location", "inside"),
    [
        ("/", None),  # the API server's root: not the Service
        (f"{PREFIX}/", "/"),
        (f"{PREFIX}/login?next=%2F", "/login?next=%2F"),
        ("login", "/app/login"),
        ("../other", "/other"),
        ("../../../../namespaces/kube-system/secrets", None),
        ("http://other-host.invalid/landing", None),
        ("//other-host.invalid/", None),
        (f"https://apiserver{PREFIX}/", None),
        ("/api/v1/namespaces/shop/services/web:http/proxyx", None),
        ("/api/v1/namespaces/shop/services/other:http/proxy/", None),
    ],
)
def test_a_redirect_is_followed_only_inside_the_service_port(location: str, inside: str | None) -> None:
    assert reach.redirect_inside(location, "/app/page", PREFIX) == inside


def test_hop_by_hop_headers_are_not_shown() -> None:
    headers = [
        ("Content-Type", "text/plain"),
        ("Connection", "close"),
        ("Set-Cookie", "a=1"),
        ("transfer-encoding", "x"),
    ]
    assert reach.shown_headers(headers) == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")]


def test_a_body_is_read_in_its_charset() -> None:
    assert reach.body_text("é".encode("latin-1"), "text/plain; charset=ISO-8859-1") == "é"
    assert reach.body_text(b"\xff ok", "text/plain") == "\ufffd ok"
    assert reach.body_text(b"ok", "text/plain; charset=no-such") == "ok"
