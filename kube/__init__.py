"""Talking to Kubernetes clusters: credentials and kubeconfigs as data, API clients, calls and their errors, and
informers. A plain package: it imports nothing of the project (a ruff rule keeps it so), only Django's settings and
translation."""

from __future__ import annotations

from kube.client import (
    MAX_READ_RETRIES,
    NAMESPACES,
    TRANSPORT_ERRORS,
    ApiError,
    ClusterRef,
    ClusterUnavailable,
    Kind,
    api_client_for,
    build_api_client,
    call,
    check_connection,
    clients,
    cluster_scoped,
    list_namespaces,
    server_version,
    unavailable_message,
    watch_client_for,
)
from kube.config import (
    Credentials,
    CredentialsUnreadable,
    KubeconfigError,
    kubeconfig_contexts,
    load_yaml_document,
    parse_kubeconfig,
    validate_server_url,
)

__all__ = [
    "MAX_READ_RETRIES",
    "NAMESPACES",
    "TRANSPORT_ERRORS",
    "ApiError",
    "ClusterRef",
    "ClusterUnavailable",
    "Credentials",
    "CredentialsUnreadable",
    "Kind",
    "KubeconfigError",
    "api_client_for",
    "build_api_client",
    "call",
    "check_connection",
    "cluster_scoped",
    "clients",
    "kubeconfig_contexts",
    "list_namespaces",
    "load_yaml_document",
    "parse_kubeconfig",
    "server_version",
    "unavailable_message",
    "validate_server_url",
    "watch_client_for",
]
