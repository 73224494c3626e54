"""The container image: the Dockerfile read statically, and the image built (``make image``) and run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.dockerfile import ROOT, dockerfile_instructions

# --- the Dockerfile -------------------------------------------------------------------------------------------


def test_the_dockerfile_copies_what_exists_and_the_context_holds() -> None:
    instructions = dockerfile_instructions()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [shlex.split(arguments) for kind, arguments in instructions if kind == "COPY"]
    local = [args for args in copies if not any(a.startswith("--from=") for a in args)]
    assert len(local) >= 8
    for args in local:
        *sources, _target = (a for a in args if not a.startswith("--"))
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] in allowed, f"{source} is excluded by .dockerignore"
    # Everything the console imports at run time is copied: its packages and their templates, static, locale.
    copied = {s.split("/")[0] for args in local for s in args[:-1]}
    assert {"manage.py", "console", "kube", "clusters", "services", "templates", "static", "locale"} <= copied
    # The later stage copies only from the build stage.
    stages = [
        arguments.split()[-1] for kind, arguments in instructions if kind == "FROM" and " AS " in arguments.upper()
    ]
    assert all(a.removeprefix("--from=") in stages for args in copies for a in args if a.startswith("--from="))


def test_the_dockerfile_installs_the_lock_with_hashes_on_debian_python_311() -> None:
    instructions = dockerfile_instructions()
    (image,) = [
        arguments for kind, arguments in instructions if kind == "ARG" and arguments.startswith("PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-(bookworm|trixie)", image)
    assert [a for k, a in instructions if k == "FROM"] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert len(installs) == 1
    words = installs[0].split()
    assert "--require-hashes" in words and "--no-deps" in words and "--only-binary=:all:" in words
    assert words[words.index("-r") + 1] == "/tmp/requirements.lock"
    assert ("COPY", "requirements.lock /tmp/requirements.lock") in instructions
    lock = (ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock and re.search(r"^gunicorn==", lock, re.MULTILINE)


def test_the_image_runs_gunicorn_as_a_user_that_is_not_root() -> None:
    instructions = dockerfile_instructions()
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1] == "10001:10001"  # numeric, so runAsNonRoot can check it; deploy/ says the same
    (command,) = [json.loads(a) for k, a in instructions if k == "CMD"]
    assert command[:4] == ["gunicorn", "--config", "python:console.gunicorn", "console.wsgi:application"]
    # gunicorn is an installed console script, its configuration a module, console.wsgi:application the application.
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    assert entry_points(group="console_scripts", name="gunicorn")
    assert find_spec(command[2].removeprefix("python:")) is not None
    import console.wsgi

    assert callable(console.wsgi.application)
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert "CONSOLE_ENV=production" in env and "PATH=/opt/venv/bin:$PATH" in env


def test_the_build_steps_work_with_the_dockerfiles_throwaway_secrets(tmp_path: Path) -> None:
    """collectstatic with production settings and the build's dummy secrets (no database, no real key)."""
    (run,) = [a for k, a in dockerfile_instructions() if k == "RUN" and "collectstatic" in a]
    assert "CONSOLE_SECRET_KEY=build-only CONSOLE_ENCRYPTION_KEYS=build-only" in run
    env = {
        **os.environ,
        "CONSOLE_ENV": "production",
        "CONSOLE_SECRET_KEY": "build-only",
        "CONSOLE_ENCRYPTION_KEYS": "build-only",
        "CONSOLE_DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_STATIC_ROOT": str(tmp_path / "static"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()
    assert not (tmp_path / "data").exists()  # nothing written but the static files
