"""Shared fixtures: one real control plane per test session, a fresh namespace per test, standing users."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from kubernetes import client

from console import kube, localcluster


@pytest.fixture(scope="session")
def control_plane() -> Iterator[localcluster.ControlPlane]:
    """The upstream kube-apiserver + etcd, built once and cached; stopped (and its data removed) at the end."""
    plane = localcluster.ControlPlane(localcluster.ensure_binaries())
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def admin_credentials(control_plane: localcluster.ControlPlane) -> kube.Credentials:
    cert, key = control_plane.client_credentials("console-admin", ("system:masters",))
    return kube.Credentials(
        server=control_plane.server,
        ca_data=control_plane.ca_pem,
        client_cert=cert,
        client_key=key,
    )


@pytest.fixture(scope="session")
def admin_api(admin_credentials: kube.Credentials) -> client.ApiClient:
    """An API client with full rights, built by the console's own client factory."""
    return kube.build_api_client(admin_credentials)


@pytest.fixture
def namespace(admin_api: client.ApiClient) -> str:
    """A new namespace for this test alone (without a controller-manager, namespaces never finish deleting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(admin_api).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(autouse=True)
def _isolated_clients() -> Iterator[None]:
    """Pooled clients are keyed by cluster id; test databases reuse ids, so start each test with none."""
    kube.clients.clear()
    yield
    kube.clients.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: settings) -> None:  # type: ignore[valid-type]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
