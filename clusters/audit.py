"""The audit log: who changed what, and who was refused. Details are written by our own code from known
fields only, and pass through ``redact`` in case an API server echoes something secret back."""

from __future__ import annotations

import re
import uuid

from django.http import HttpRequest

from clusters.models import AuditEntry

_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)((?:token|password|client-key-data|client-certificate-data)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text[:4000]


def request_id(request: HttpRequest) -> str:
    """This request's id, made on first use: it goes to the cluster with every call made for the request and onto
    its audit entry. Never taken from the browser."""
    if not getattr(request, "console_request_id", ""):
        request.console_request_id = uuid.uuid4().hex
    return request.console_request_id


def record(
    request: HttpRequest,
    *,
    action: str,
    result: str,
    cluster: str = "",
    namespace: str = "",
    kind: str = "",
    name: str = "",
    detail: str = "",
    username: str = "",
    uid: str = "",
    resource_version: str = "",
) -> AuditEntry:
    user = request.user if request.user.is_authenticated else None
    return AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user else username[:150],
        cluster=cluster,
        namespace=namespace,
        kind=kind,
        object_name=name,
        action=action,
        result=result,
        detail=redact(detail),
        request_id=request_id(request),
        uid=uid,
        resource_version=resource_version,
    )
