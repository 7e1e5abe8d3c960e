"""The console ships with the package: every template and static file is package data, the vendored files are the
ones VENDORED.md records (with their licences), and the pages load nothing from another origin."""

from __future__ import annotations

import fnmatch
import re
import tomllib

from tests.conftest import ROOT

CONSOLE = ROOT / "enforcement" / "console"


def test_every_template_and_static_file_is_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["enforcement"]
    files = [p.relative_to(ROOT / "enforcement").as_posix() for d in ("templates", "static")
             for p in (CONSOLE / d).rglob("*") if p.is_file()]
    assert files and not [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]


def test_vendored_files_have_their_licence_and_their_version_in_vendored_md():
    vendored = (CONSOLE / "static" / "vendor" / "VENDORED.md").read_text()
    base = (CONSOLE / "templates" / "base.html").read_text()
    for folder in (CONSOLE / "static" / "vendor").iterdir():
        if folder.is_dir():
            name, version = folder.name.rsplit("-", 1)
            assert (folder / "LICENSE").stat().st_size > 100
            assert f"| {version} |" in vendored and "sha512-" in vendored
            assert f"/static/vendor/{folder.name}/" in base, f"{name} {version} not the one the pages load"


def test_templates_load_nothing_from_another_origin_and_hold_no_inline_script_or_style():
    for t in (CONSOLE / "templates").glob("*.html"):
        html = t.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', html), t.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), t.name
        assert "<style" not in html and " style=" not in html and " on" + "click=" not in html, t.name
