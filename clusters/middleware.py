"""A grant on a namespace that does not exist yet is answered with a page saying so, from whichever view of that
namespace the person opened (``clusters.access.namespace_access`` raises ``NamespaceNotCreated``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from clusters.access import NamespaceNotCreated


class NamespaceNotCreatedMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, NamespaceNotCreated):
            return None
        context = {"access": exception.access, "namespace": exception.namespace, "nav": "services"}
        return render(request, "clusters/namespace_missing.html", context, status=404)
