"""Nothing lost: real Service manifests from public projects (``tests/corpus/services``, each naming its source)
survive being opened and saved unchanged in the console.

Each manifest is created as ``kubectl apply`` (client-side) creates it: with the last-applied-configuration
annotation and kubectl's field manager. Then its edit form (or YAML editor) is fetched as a person would open it,
and what a browser would send back from that page without any change (``tests.browser_form``: every control as the
HTML standard submits it, the default button) is posted, with and without htmx. The live Service's labels,
annotations and whole spec must be exactly as they were.

Done as a Cluster Admin (who sees every field) and as an NS Edit (to whom externalIPs and ExternalName are not
offered, so the form must keep them untouched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.browser_form import submit

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

CORPUS = sorted((Path(__file__).resolve().parent.parent / "corpus" / "services").glob("*.yaml"))
WAYS = ("form", "form-htmx", "yaml")


def test_the_corpus_is_large_and_names_its_sources() -> None:
    assert len(CORPUS) >= 30
    for path in CORPUS:
        header = path.read_text().splitlines()[0]
        assert header.startswith("# Source: ") and "/" in header, path.name
        assert yaml.safe_load(path.read_text())["kind"] == "Service", path.name


def apply_as_kubectl(admin_api: k8s.ApiClient, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create ``manifest`` as ``kubectl apply`` does the first time: the object as given, with the
    last-applied-configuration annotation (compact JSON of what was applied, and a line break) added."""
    applied = json.loads(json.dumps(manifest))
    applied.setdefault("metadata", {})["namespace"] = namespace
    body = json.loads(json.dumps(applied))
    annotations = body["metadata"].setdefault("annotations", {}) or {}
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = (
        json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
    )
    body["metadata"]["annotations"] = annotations
    core = k8s.CoreV1Api(admin_api)
    core.create_namespaced_service(namespace, body, field_manager="kubectl-client-side-apply")
    return read(admin_api, namespace, manifest["metadata"]["name"])


def read(admin_api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    response = k8s.CoreV1Api(admin_api).read_namespaced_service(name, namespace, _preload_content=False)
    return json.loads(response.data)


def kept(service: dict[str, Any]) -> dict[str, Any]:
    """What must not change: labels, annotations and the whole spec."""
    metadata = service["metadata"]
    return {"labels": metadata.get("labels"), "annotations": metadata.get("annotations"), "spec": service["spec"]}


@pytest.fixture(params=["cluster_admin", "editor"])
def person(request, client, people):
    client.force_login(getattr(people, request.param))
    return client


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_a_real_service_survives_being_opened_and_saved_unchanged(
    person, admin_api: k8s.ApiClient, namespace: str, service_url, path: Path, way: str
) -> None:
    manifest = yaml.safe_load(path.read_text())
    name = manifest["metadata"]["name"]
    before = apply_as_kubectl(admin_api, namespace, manifest)
    try:
        page_url = service_url("edit_yaml" if way == "yaml" else "edit", name)
        page = person.get(page_url)
        assert page.status_code == 200, page.content[:2000]
        if way == "yaml":
            sent = submit(page.content, "yaml-form", submitter={"value": "save"}, url=page_url)
        else:
            sent = submit(page.content, "service-form", htmx=way == "form-htmx", url=page_url)
        answer = person.post(sent.action, sent.body, content_type="application/x-www-form-urlencoded", **sent.headers)
        saved = answer.status_code == 302 or bool(answer.headers.get("HX-Redirect"))
        assert saved, answer.content.decode()[:3000]
        after = read(admin_api, namespace, name)
        assert kept(after) == kept(before)
    finally:
        try:
            k8s.CoreV1Api(admin_api).delete_namespaced_service(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
