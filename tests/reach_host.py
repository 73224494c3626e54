"""A real HTTP server for a Pod of the test cluster: a network namespace with a veth pair, made and removed by the
tests themselves (as root), running ``tests/reach_server.py``.

The API server proxies only to endpoints that are Pods holding the endpoint's address, and refuses loopback
addresses, so the server lives at an address of its own: host side ``10.250.N.1/30``, test host ``10.250.N.2/30``.
A Pod whose status says Running, Ready at that address, and a Service selecting it, make the API server's proxy
reach it. Only such test hosts are ever a target of the tests' requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

from tests.helpers import eventually, make_node, run_pod

ROOT = Path(__file__).resolve().parents[1]
HTTP_PORT = 8080
GARBAGE_PORT = 9000  # accepts TCP, answers bytes that are not HTTP
CLOSED_PORT = 8081  # nothing listens


@dataclass(frozen=True)
class NetnsHost:
    namespace: str  # the network namespace
    address: str  # the test host's address, the Pod's IP


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _free_subnet() -> int:
    """N of a 10.250.N.0/30 no interface of the machine holds (tests of several processes run side by side)."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True).stdout
    start = os.getpid() % 250
    for offset in range(250):
        subnet = (start + offset) % 250
        if f"10.250.{subnet}." not in used:
            return subnet
    raise RuntimeError("no free 10.250.N.0/30 for a test host")


@contextmanager
def netns_host() -> Iterator[NetnsHost]:
    """A network namespace with its HTTP server listening on ``HTTP_PORT`` and its garbage on ``GARBAGE_PORT``;
    all of it removed afterwards."""
    tag = f"{os.getpid() % 100000}"
    netns, outside, inside = f"ksc-reach-{tag}", f"ksr{tag}h", f"ksr{tag}n"
    subnet = _free_subnet()
    host_side, address = f"10.250.{subnet}.1", f"10.250.{subnet}.2"
    _ip("netns", "add", netns)
    server = None
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("addr", "add", f"{host_side}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", netns, "addr", "add", f"{address}/30", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                "-m",
                "tests.reach_server",
                str(HTTP_PORT),
                str(GARBAGE_PORT),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready", "the test host did not start"
        yield NetnsHost(netns, address)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=10)  # its peer goes with it
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=10)


def serve_from(admin_api: k8s.ApiClient, namespace: str, host: NetnsHost, *, ready: bool = True) -> None:
    """A Node and a Pod ``web-0`` (labels ``app: web``) at the test host's address, Running and Ready as a kubelet
    would say (``ready``: whether its readiness passes)."""
    node = f"node-{namespace}"
    make_node(admin_api, node)
    ports = [{"name": "http", "containerPort": HTTP_PORT}, {"name": "garbage", "containerPort": GARBAGE_PORT}]
    run_pod(admin_api, namespace, "web-0", {"app": "web"}, ports=ports, ready=ready, node=node, pod_ip=host.address)


def web_service(admin_api: k8s.ApiClient, namespace: str, name: str = "web", *, selector: str = "web") -> dict:
    """A Service ``name`` selecting ``app: <selector>`` with three ports: ``http`` 80 (the server), ``garbage`` 9000
    (no HTTP) and ``closed`` 81 (nothing listens)."""
    ports = [
        {"name": "http", "port": 80, "targetPort": HTTP_PORT},
        {"name": "garbage", "port": GARBAGE_PORT, "targetPort": GARBAGE_PORT},
        {"name": "closed", "port": 81, "targetPort": CLOSED_PORT},
    ]
    body = {"metadata": {"name": name}, "spec": {"selector": {"app": selector}, "ports": ports}}
    return k8s.CoreV1Api(admin_api).create_namespaced_service(namespace, body).to_dict()


def wait_for_endpoint(admin_api: k8s.ApiClient, namespace: str, service: str, address: str) -> None:
    """Until the EndpointSlice controller lists ``address`` as ready for ``service``."""
    discovery = k8s.DiscoveryV1Api(admin_api)

    def listed() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        ).items
        return any(
            address in endpoint.addresses and endpoint.conditions.ready
            for endpoint_slice in slices
            for endpoint in endpoint_slice.endpoints or []
        )

    eventually(listed, 20, interval=0.1)
    time.sleep(0.2)  # the API server's own EndpointSlice informer follows the controller's write
