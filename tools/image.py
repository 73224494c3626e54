"""Build the console's container image here, with Debian's podman: ``python -m tools.image build`` (``make image``).

The Dockerfile's default base is the public ``python:3.11-slim-bookworm``. No image registry is reachable from this
machine, so the base is made from Debian's own packages instead: ``mmdebstrap`` builds a minimal bookworm root with
its Python 3.11, ``podman import`` turns it into ``localhost/kube-service-console-base:bookworm``, and the build
passes it as the ``PYTHON_IMAGE`` argument. Everything else is the Dockerfile as an operator builds it.

Podman runs with a configuration of its own (``CONTAINERS_CONF``): this host refuses podman's default ``nproc``
ulimit, and crun does not run on its hybrid cgroups (runc does). Builds and containers use the host's network, so
pip reaches PyPI (with the host's CA bundle, mounted read-only into the build) and a container reaches PostgreSQL
and the API server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.localcluster import cache_dir

ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/kube-service-console-base:bookworm"
IMAGE = "localhost/kube-service-console:dev"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What the public python:3.11-slim image gives the Dockerfile: `python` and `python -m venv`, CA certificates,
# and groupadd/useradd (passwd is part of every Debian root). Documentation, manual pages and message catalogs of
# the base's packages are left out, as the slim image leaves them out.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
EXCLUDED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
CONTAINERS_CONF = """\
# Written by tools/image.py: podman's settings for this machine.
[containers]
# The default nproc ulimit is refused here.
default_ulimits = []

[engine]
# crun fails on this host's hybrid cgroups; runc works.
runtime = "runc"
"""


class ImageError(RuntimeError):
    pass


def podman_environment() -> dict[str, str]:
    """The environment podman runs in: the machine's, with the configuration above."""
    folder = cache_dir().parent
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; its output as text. With ``check``, a failure raises ImageError with podman's words."""
    if shutil.which("podman") is None:
        raise ImageError("podman is not installed (apt-get install podman buildah runc mmdebstrap)")
    kwargs.setdefault("capture_output", True)
    done = subprocess.run(
        ["podman", *args], env=podman_environment(), text=True, timeout=timeout, check=False, **kwargs
    )
    if check and done.returncode != 0:
        raise ImageError(f"podman {args[0]} failed ({done.returncode}):\n{(done.stderr or '')[-4000:]}")
    return done


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_base(log=print) -> str:
    """The local Debian base image, made once (about a minute) and kept in podman's image store."""
    if image_exists(BASE):
        return BASE
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    started = time.monotonic()
    folder = cache_dir().parent
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "base-rootfs.tar"
    command = [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDED),
        "bookworm", str(root),
    ]  # fmt: skip
    log(f"Making the Debian bookworm base image {BASE} with mmdebstrap")
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        root.unlink(missing_ok=True)
        raise ImageError(f"mmdebstrap failed ({done.returncode}):\n{done.stderr[-4000:]}")
    try:
        podman("import", "--change", 'CMD ["python3"]', str(root), BASE)
    finally:
        root.unlink(missing_ok=True)
    log(f"Made {BASE} in {time.monotonic() - started:.0f} s")
    return BASE


def image_size(name: str) -> int:
    """The image's size in bytes, as podman reports it (all its layers, uncompressed)."""
    (info,) = json.loads(podman("image", "inspect", name).stdout)
    return int(info["Size"])


def build(tag: str = IMAGE, log=print) -> dict:
    """Build the Dockerfile on the local base; return the tag, the build's seconds and the image's bytes."""
    base = ensure_base(log)
    started = time.monotonic()
    command = ["build", "--network=host", "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag]
    if CA_BUNDLE.exists():
        command += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    log(f"Building {tag}")
    podman(*command, str(ROOT), timeout=1800, capture_output=False, stdout=sys.stderr, stderr=sys.stderr)
    built = {
        "image": tag,
        "seconds": round(time.monotonic() - started, 1),
        "bytes": image_size(tag),
        "base_bytes": image_size(base),
    }
    log(
        f"Built {tag} in {built['seconds']:.0f} s: {built['bytes'] / 1e6:.0f} MB "
        f"({(built['bytes'] - built['base_bytes']) / 1e6:.0f} MB over the {built['base_bytes'] / 1e6:.0f} MB base)"
    )
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.image", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the image on the local Debian base")
    build_command.add_argument("--tag", default=IMAGE)
    options = parser.parse_args(argv)
    try:
        result = build(options.tag, log=lambda line: print(line, file=sys.stderr))
    except ImageError as problem:
        print(problem, file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
