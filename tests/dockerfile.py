"""The Dockerfile read as data, for the tests of the image and of the manifests that run it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in lines if not line.lstrip().startswith("#")))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


def dockerfile_env() -> dict[str, str]:
    """The final stage's ENV settings (``KEY=value`` pairs, in order; later ones win)."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM")
    env: dict[str, str] = {}
    for kind, arguments in instructions[last_from:]:
        if kind == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env
