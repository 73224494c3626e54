"""Both languages are complete: every string translated, the catalog current, the language chosen and kept."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

CATALOG = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def msgids(po: Path) -> set[str]:
    """The msgids of a catalog (joined across continuation lines), header excluded."""
    ids, current, inside = set(), [], False
    for line in po.read_text().splitlines():
        if line.startswith("msgid "):
            current, inside = [line[6:]], True
        elif inside and line.startswith('"'):
            current.append(line)
        else:
            if inside:
                ids.add("".join(part.strip('"') for part in current))
            inside = False
    return ids - {""}


def test_every_message_is_translated_and_none_is_fuzzy() -> None:
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(CATALOG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    statistics = result.stderr.strip()
    assert re.fullmatch(r"\d+ translated messages\.", statistics), statistics
    assert "#, fuzzy" not in CATALOG.read_text().split("\n\n", 1)[1]


def test_the_catalog_holds_every_string_of_the_sources(tmp_path: Path) -> None:
    """Extract the strings again from a copy of the sources: nothing may be missing or left over."""
    base = Path(settings.BASE_DIR)
    for name in ("console", "clusters", "kube", "services", "templates", "locale"):
        shutil.copytree(base / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(base / "manage.py", tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--verbosity", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "CONSOLE_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    fresh = msgids(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    current = msgids(CATALOG)
    assert fresh - current == set(), "strings missing from the catalog: run makemessages and translate them"
    assert current - fresh == set(), "strings in the catalog that no source uses any more"


@pytest.mark.django_db
def test_the_language_follows_the_browser(client: Client) -> None:
    chinese = client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    english = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert 'lang="zh-hans"' in chinese and "登录" in chinese
    assert 'lang="en"' in english and "Log in" in english


@pytest.mark.django_db
def test_the_language_switch_sticks(client: Client, make_user) -> None:
    client.force_login(make_user("reader"))
    switched = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/clusters/"})
    assert switched.status_code == 302
    page = client.get("/clusters/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "集群列表" in page
