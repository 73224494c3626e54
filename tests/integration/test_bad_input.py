"""The bad-input corpus: every entry gets a clear message, never a 500, nothing is created, the input is kept, and
markup comes back escaped."""

from __future__ import annotations

import io

import pytest
import yaml
from django.test import Client
from django.utils.html import escape
from kubernetes import client as k8s

from clusters.forms import ClusterForm
from clusters.models import Cluster, Role
from tests.helpers import service_form

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

SCRIPT = "<script>alert(1)</script>"
PORT = {"protocol": "TCP", "name": "", "port": 80, "target_port": "", "node_port": ""}


def port(**changes):
    return [{**PORT, **changes}]


# (id, form fields or overrides, expected message, the typed value that must come back)
FORM_CASES = [
    ("name-upper", {"name": "Web-api"}, "lowercase letters", "Web-api"),
    ("name-unicode", {"name": "服务名称"}, "lowercase letters", "服务名称"),
    ("name-too-long", {"name": "a" * 64}, "4 to 63 characters long", "a" * 64),
    ("name-too-short", {"name": "abc"}, "4 to 63 characters", "abc"),
    ("name-leading-digit", {"name": "1abc"}, "starting with a lowercase letter", "1abc"),
    ("name-trailing-dash", {"name": "abcd-"}, "ending with a letter or digit", "abcd-"),
    ("name-markup", {"name": SCRIPT}, "lowercase letters", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("port-zero", {"ports": port(port=0)}, "greater than or equal to 1", 'value="0"'),
    ("port-too-big", {"ports": port(port=65536)}, "less than or equal to 65535", "65536"),
    ("port-text", {"ports": port(port="abc")}, "Enter a whole number", "abc"),
    ("port-row-empty", {"ports": port(port="")}, "Add at least one port", 'name="ports-0-port"'),
    ("target-port-too-big", {"ports": port(target_port="70000")}, "between 1 and 65535", "70000"),
    ("target-port-bad-name", {"ports": port(target_port="Bad_Name")}, "named container port", "Bad_Name"),
    ("target-port-long-name", {"ports": port(target_port="averyveryverylongname")}, "at most 15", "averyveryverylong"),
    ("target-port-markup", {"ports": port(target_port="<b>x")}, "named container port", "&lt;b&gt;x"),
    ("node-port-too-big", {"type": "NodePort", "ports": port(node_port=99999)}, "less than or equal to 65535", "99999"),
    (
        "node-port-out-of-range",
        {"type": "NodePort", "ports": port(node_port=8080)},
        "8080 is outside the cluster",  # the API server's sentence, said in the user's language
        "8080",
    ),
    ("protocol-unknown", {"ports": port(protocol="HTTP")}, "Select a valid choice", 'name="ports-0-protocol"'),
    ("port-name-upper", {"ports": port(name="HTTP")}, "lowercase letters", "HTTP"),
    (
        "port-names-duplicate",
        {"ports": [{**PORT, "name": "web"}, {**PORT, "name": "web", "port": 81}]},
        "Port names must be unique",
        'value="web"',
    ),
    ("ports-unnamed", {"ports": [PORT, {**PORT, "port": 81}]}, "every port needs a name", 'value="81"'),
    (
        "port-protocol-duplicate",
        {"ports": [{**PORT, "name": "a"}, {**PORT, "name": "b"}]},
        "already used by another row",
        'value="b"',
    ),
    ("ports-none", {"ports": []}, "Add at least one port", 'name="ports-TOTAL_FORMS"'),
    ("selector-key-space", {"selector": {"my app": "x"}}, "Use at most 63 letters", "my app"),
    ("selector-key-dash", {"selector": {"-bad": "x"}}, "Use at most 63 letters", "-bad"),
    ("selector-key-prefix", {"selector": {"Example.com/x": "y"}}, "DNS subdomain", "Example.com/x"),
    ("selector-value-space", {"selector": {"app": "a b"}}, "Use at most 63 letters", "a b"),
    ("selector-value-long", {"selector": {"app": "v" * 64}}, "Use at most 63 letters", "v" * 64),
    ("selector-markup", {"selector": {"app": SCRIPT}}, "Use at most 63 letters", "&lt;script&gt;"),
    ("annotation-key-space", {"annotations": {"bad key": "v"}}, "Use at most 63 letters", "bad key"),
    ("annotation-value-without-key", {"annotations": {"": "orphan"}}, "Give a key for this value", "orphan"),
    ("annotation-1mib", {"annotations": {"big": "x" * (1 << 20)}}, "at most 256 KiB", "x" * 1000),
    (
        "annotation-markup-kept-escaped",
        {"annotations": {"note": SCRIPT}, "name": "Bad"},
        "lowercase letters",
        "&lt;script&gt;alert(1)",
    ),
    (
        "session-timeout-zero",
        {"session_affinity": True, "session_timeout": "0"},
        "greater than or equal to 1",
        'value="0"',
    ),
    (
        "session-timeout-too-long",
        {"session_affinity": True, "session_timeout": "86401"},
        "less than or equal to 86400",
        "86401",
    ),
    ("session-timeout-text", {"session_affinity": True, "session_timeout": "abc"}, "Enter a whole number", "abc"),
    ("type-unknown", {"type": "ExternalName"}, "Select a valid choice", 'name="type"'),
    (
        "traffic-policy-unknown",
        {"type": "NodePort", "external_traffic_policy": "Bogus"},
        "Select a valid choice",
        "Bogus",
    ),
    (
        "lb-address-markup",
        {"type": "LoadBalancer", "lb_type": "other", "lb_address": SCRIPT},
        "Give an IP address",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ),
]

YAML_CASES = [
    ("yaml-secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\n", "Only a Service"),
    (
        "yaml-two-documents",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: Service\n",
        "exactly one YAML document",
    ),
    (
        "yaml-other-namespace",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x1-svc, namespace: default}\n",
        "belongs in namespace",
    ),
    ("yaml-python-tag", "!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("yaml-list", "- a\n- b\n", "must be a mapping"),
    ("yaml-syntax", "apiVersion: v1\nkind: [Service\n", "not valid YAML"),
    ("yaml-too-big", "# " + "x" * (600 * 1024) + "\n", "larger than 512 KiB"),
    ("yaml-no-name", "apiVersion: v1\nkind: Service\nmetadata: {}\n", "metadata.name"),
    ("yaml-aliases", "apiVersion: v1\nkind: Service\nmetadata: &m {name: a1}\nx: *m\n", "aliases are not allowed"),
    ("yaml-api-version", "apiVersion: v2\nkind: Service\nmetadata: {name: a1}\n", "Only a Service"),
    (
        "yaml-spec-list",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a1-svc}\nspec: [1]\n",
        "spec must be a mapping",
    ),
    (
        "yaml-markup-name",
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: '{SCRIPT}'}}\nspec: {{ports: [{{port: 80}}]}}\n",
        "metadata.name",
    ),
]

KUBECONFIG_CASES = [
    ("kubeconfig-exec", {"users": [{"name": "u", "user": {"exec": {"command": "id"}}}]}, "runs a command"),
    ("kubeconfig-token-file", {"users": [{"name": "u", "user": {"tokenFile": "/etc/shadow"}}]}, "reads a file"),
    ("kubeconfig-not-mapping", ["a", "b"], "YAML mapping"),
    ("kubeconfig-no-context", {"current-context": "missing"}, "no context named"),
]

URL_CASES = [
    ("url-cluster-upper", "/clusters/LOCAL/namespaces/{ns}/services/", 404),
    ("url-cluster-unicode", "/clusters/%E9%9B%86%E7%BE%A4/namespaces/{ns}/services/", 404),
    ("url-namespace-symbols", "/clusters/local/namespaces/a%21b/services/", 404),
    ("url-namespace-not-granted", "/clusters/local/namespaces/kube-system/services/", 403),
    ("url-service-unknown", "/clusters/local/namespaces/{ns}/services/no-such-svc/", 302),
    ("url-service-odd-name", "/clusters/local/namespaces/{ns}/services/Bad_Name/edit/", 302),
    ("url-bad-continue", "/clusters/local/namespaces/{ns}/services/?continue=garbage", 200),
    ("url-bad-page", "/clusters/local/namespaces/{ns}/services/?page=-1&q=x", 200),
    ("url-history-unknown-service", "/clusters/local/namespaces/{ns}/services/no-such-svc/history/?before=²", 302),
    ("url-compare-bad-id", "/clusters/local/namespaces/{ns}/services/no-such-svc/history/compare/?a=x&b=٣", 404),
    ("url-compare-nothing", "/clusters/local/namespaces/{ns}/services/no-such-svc/history/compare/", 404),
    ("url-restore-huge-id", "/clusters/local/namespaces/{ns}/services/x/history/99999999999999999999/restore/", 404),
    ("url-undelete-nothing", "/clusters/local/namespaces/{ns}/services/no-such-svc/history/undelete/", 404),
    ("url-deleted-bad-query", "/clusters/local/namespaces/{ns}/services/_deleted/?page=²", 200),
    # Reaching a Service: a path out of it is refused before the Service is even looked up.
    ("url-reach-unknown-service", "/clusters/local/namespaces/{ns}/services/no-such-svc/reach/http/", 302),
    ("url-reach-open-traversal", "/clusters/local/namespaces/{ns}/services/no-such-svc/reach/http/open/..%2fx", 422),
    ("url-reach-open-double-encoded", "/clusters/local/namespaces/{ns}/services/x/reach/80/open/%252e%252e/", 422),
    ("url-reach-view-absolute", "/clusters/local/namespaces/{ns}/services/x/reach/80/view/?path=//a.invalid/", 422),
    ("url-reach-view-control", "/clusters/local/namespaces/{ns}/services/x/reach/80/view/?path=/a%0d%0aX:1", 422),
    ("url-reach-open-unknown-port", "/clusters/local/namespaces/{ns}/services/no-such-svc/reach/Bad_Port/open/", 302),
]


@pytest.fixture
def web(client: Client, make_user, cluster: Cluster, namespace: str) -> Client:
    client.force_login(make_user("corpus", role=Role.NS_EDIT, cluster=cluster, namespace=namespace))
    return client


def services(admin_api: k8s.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in k8s.CoreV1Api(admin_api).list_namespaced_service(namespace).items]


def test_the_corpus_is_large_enough() -> None:
    assert len(FORM_CASES) + len(YAML_CASES) + len(KUBECONFIG_CASES) + len(URL_CASES) >= 40


@pytest.mark.parametrize(("case", "fields", "message", "kept"), FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_form(
    web: Client, admin_api: k8s.ApiClient, namespace: str, case: str, fields: dict, message: str, kept: str
) -> None:
    data = service_form(**{"name": "good-name", **fields})
    response = web.post(f"/clusters/local/namespaces/{namespace}/services/create/", data)
    html = response.content.decode()
    assert response.status_code == 422, case
    assert message in html, case
    assert kept in html, case
    assert SCRIPT not in html
    assert services(admin_api, namespace) == []


@pytest.mark.parametrize(("case", "text", "message"), YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_yaml(web: Client, admin_api: k8s.ApiClient, namespace: str, case: str, text: str, message: str) -> None:
    response = web.post(f"/clusters/local/namespaces/{namespace}/services/create-yaml/", {"yaml": text})
    html = response.content.decode()
    assert response.status_code == 422, case
    assert message in html, case
    assert SCRIPT not in html
    assert escape(text[:200]) in html or len(text) > 500_000  # the text is kept (the oversized one is not echoed)
    assert services(admin_api, namespace) == []


@pytest.mark.parametrize(("case", "document", "message"), KUBECONFIG_CASES, ids=[c[0] for c in KUBECONFIG_CASES])
def test_kubeconfig(case: str, document: object, message: str) -> None:
    base = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    content = {**base, **document} if isinstance(document, dict) else document
    upload = io.BytesIO(yaml.safe_dump(content).encode())
    upload.name = "kubeconfig"
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = ClusterForm(data={"name": "new-one"}, files={"kubeconfig": SimpleUploadedFile("kubeconfig", upload.read())})
    assert not form.is_valid()
    assert message in str(form.errors), case
    assert not Cluster.objects.filter(name="new-one").exists()


@pytest.mark.parametrize(("case", "path", "status"), URL_CASES, ids=[c[0] for c in URL_CASES])
def test_url(web: Client, namespace: str, case: str, path: str, status: int) -> None:
    response = web.get(path.format(ns=namespace), follow=False)
    assert response.status_code == status, case
    if status == 302:
        followed = web.get(response["Location"])
        assert "no longer exists" in followed.content.decode()
    if case == "url-bad-continue":
        assert 'class="notice notice-error"' in response.content.decode()
