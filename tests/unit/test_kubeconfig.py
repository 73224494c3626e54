"""Uploaded kubeconfigs are data: nothing in them is run, no file they name is opened."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import yaml

import kube

LIMIT = 256 * 1024
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def kubeconfig(user: dict | None = None, cluster: dict | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}],
            "users": [{"name": "u", "user": user if user is not None else {"token": "abc"}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "ctx",
        }
    )


_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> list[str]:
    """Every path Python opens during the test (from the interpreter's audit hooks)."""
    _opened.clear()
    return _opened


def test_exec_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = kubeconfig(
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": [str(marker)]}}
    )
    with pytest.raises(kube.KubeconfigError, match="“exec”, which runs a command"):
        kube.parse_kubeconfig(text, max_bytes=LIMIT)
    assert not marker.exists()


def test_auth_provider_is_refused() -> None:
    with pytest.raises(kube.KubeconfigError, match="auth-provider"):
        kube.parse_kubeconfig(kubeconfig({"auth-provider": {"name": "oidc", "config": {}}}), max_bytes=LIMIT)


@pytest.mark.parametrize("key", ["tokenFile", "client-certificate", "client-key"])
def test_file_paths_are_refused_without_being_opened(tmp_path: Path, opened: list[str], key: str) -> None:
    existing = tmp_path / "real-file"
    existing.write_text("secret")
    opened.clear()
    messages = []
    for path in (existing, tmp_path / "missing-file"):
        with pytest.raises(kube.KubeconfigError) as raised:
            kube.parse_kubeconfig(kubeconfig({key: str(path)}), max_bytes=LIMIT)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]  # the message does not tell whether the path exists
    assert str(tmp_path) not in messages[0]
    assert not [path for path in opened if str(tmp_path) in path]


def test_certificate_authority_path_is_refused(tmp_path: Path, opened: list[str]) -> None:
    with pytest.raises(kube.KubeconfigError, match="certificate-authority"):
        kube.parse_kubeconfig(kubeconfig(cluster={"certificate-authority": str(tmp_path / "ca")}), max_bytes=LIMIT)
    assert not [path for path in opened if str(tmp_path) in path]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (kubeconfig(cluster={"proxy-url": "socks5://127.0.0.1:1080"}), "proxy-url"),
        (kubeconfig() + "---\n" + kubeconfig(), "exactly one YAML document"),
        ("- just\n- a list\n", "YAML mapping"),
        ("x" * (LIMIT + 1), "larger than 256 KiB"),
        ('a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n', "aliases are not allowed"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
        (kubeconfig(cluster={"server": "http://127.0.0.1:8080"}), "https://"),
        (kubeconfig(cluster={"insecure-skip-tls-verify": True}), "Allow insecure"),
        (kubeconfig({}), "neither a token nor a client certificate"),
        (kubeconfig({"client-certificate-data": CA}), "needs its key"),
        (kubeconfig({"token": "t", "as": "admin"}), "impersonates"),
        (kubeconfig(cluster={"certificate-authority-data": "not base64!"}), "not valid base64"),
    ],
)
def test_bad_kubeconfigs_get_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(kube.KubeconfigError, match=message):
        kube.parse_kubeconfig(text, max_bytes=LIMIT)


def test_insecure_is_accepted_only_when_allowed_explicitly() -> None:
    text = kubeconfig(cluster={"insecure-skip-tls-verify": True, "server": "http://127.0.0.1:8080"})
    credentials = kube.parse_kubeconfig(text, max_bytes=LIMIT, allow_insecure=True)
    assert credentials.insecure_skip_tls_verify and credentials.server == "http://127.0.0.1:8080"


def test_a_named_context_is_used() -> None:
    document = yaml.safe_load(kubeconfig())
    document["clusters"].append({"name": "other", "cluster": {"server": "https://10.1.2.3:6443"}})
    document["contexts"].append({"name": "second", "context": {"cluster": "other", "user": "u"}})
    credentials = kube.parse_kubeconfig(yaml.safe_dump(document), "second", max_bytes=LIMIT)
    assert credentials.server == "https://10.1.2.3:6443" and credentials.token == "abc"
    with pytest.raises(kube.KubeconfigError, match="no context named “nope”"):
        kube.parse_kubeconfig(yaml.safe_dump(document), "nope", max_bytes=LIMIT)


def test_credentials_repr_shows_no_secret() -> None:
    credentials = kube.parse_kubeconfig(kubeconfig({"token": "very-secret-token"}), max_bytes=LIMIT)
    assert "very-secret-token" not in repr(credentials)


def _nested_mapping(depth: int) -> str:
    return "".join(f"{'  ' * level}k:\n" for level in range(depth)) + f"{'  ' * depth}v\n"


@pytest.mark.parametrize(
    "text",
    [
        _nested_mapping(600),
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "b" + "}" * 3000,
        kubeconfig().replace("current-context: ctx", "current-context: " + "[" * 4000 + "]" * 4000),
    ],
    ids=["block-mapping", "flow-sequence", "flow-mapping", "inside-a-kubeconfig"],
)
def test_deeply_nested_yaml_is_refused_with_a_message_not_a_recursion_error(text: str) -> None:
    with pytest.raises(kube.KubeconfigError, match="nests more than 100 levels"):
        kube.parse_kubeconfig(text, max_bytes=1 << 20)


def test_nesting_within_the_limit_is_read() -> None:
    assert kube.load_yaml_document(_nested_mapping(90), max_bytes=1 << 20) is not None


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        ({"token": "two words"}, None, "visible ASCII"),
        ({"token": "tökén"}, None, "visible ASCII"),
        ({"token": 12345}, None, "visible ASCII"),
        (None, {"server": "https://[::1"}, "not a valid URL"),
        (None, {"server": "https://127.0.0.1:99999"}, "not a valid URL"),
        (None, {"server": ["https://127.0.0.1"]}, "no server URL"),
        ({"client-certificate-data": 5, "client-key-data": 5}, None, "base64 text"),
    ],
)
def test_values_of_the_wrong_shape_get_a_clear_message(user: dict | None, cluster: dict | None, message: str) -> None:
    with pytest.raises(kube.KubeconfigError, match=message):
        kube.parse_kubeconfig(kubeconfig(user, cluster), max_bytes=LIMIT)
