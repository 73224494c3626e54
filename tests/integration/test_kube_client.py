"""The client factory keeps TLS keys off disk where the OS allows, and works where it does not (macOS)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from kubernetes import client

import kube

pytestmark = pytest.mark.cluster


def _leftovers() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("kube-client-*")}


def test_a_client_certificate_is_loaded_through_an_anonymous_memory_file(
    admin_credentials: kube.Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *args, **kw: written.append(str(path)) or real_open(path, *args, **kw))
    api = kube.build_api_client(admin_credentials)
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert written == []  # nothing was opened by path: the key went through memfd_create


def test_without_memfd_the_key_goes_through_a_private_file_that_is_removed_at_once(
    admin_credentials: kube.Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "memfd_create")  # as on macOS
    modes: list[int] = []
    real_load = __import__("ssl").SSLContext.load_cert_chain

    def load_cert_chain(self, path, *args, **kwargs):  # noqa: ANN001, ANN202 - the ssl signature
        modes.append(os.stat(path).st_mode & 0o777)
        modes.append(os.stat(os.path.dirname(path)).st_mode & 0o777)
        return real_load(self, path, *args, **kwargs)

    monkeypatch.setattr("ssl.SSLContext.load_cert_chain", load_cert_chain)
    before = _leftovers()
    api = kube.build_api_client(admin_credentials)
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert modes == [0o600, 0o700]  # readable by this user only, in a folder only this user can list
    assert _leftovers() == before  # and gone once loaded


def test_a_mismatched_certificate_and_key_get_a_clear_message_either_way(
    admin_credentials: kube.Credentials, control_plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cert, other_key = control_plane.client_credentials("someone-else")
    mismatched = kube.Credentials(
        admin_credentials.server,
        admin_credentials.ca_data,
        client_cert=admin_credentials.client_cert,
        client_key=other_key,
    )
    with pytest.raises(kube.KubeconfigError, match="not a matching PEM pair"):
        kube.build_api_client(mismatched)
    monkeypatch.delattr(os, "memfd_create")
    before = _leftovers()
    with pytest.raises(kube.KubeconfigError, match="not a matching PEM pair"):
        kube.build_api_client(mismatched)
    assert _leftovers() == before
