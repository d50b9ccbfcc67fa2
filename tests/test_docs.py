"""Every Python example in the README and the documentation runs (each page in its own
namespace, its blocks in order), and the site builds in strict mode when mkdocs is installed."""

from __future__ import annotations

import linecache
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def test_documentation_has_examples():
    assert sum(len(_blocks(p)) for p in PAGES) >= 5


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_examples_run(page):
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(_blocks(page), 1):
        # under a name of its own in linecache, so that tracebacks and tools that read source
        # (inspect, hypothesis) see the block and not the Markdown page around it
        name = f"<{page.relative_to(ROOT)}, example {number}>"
        linecache.cache[name] = (len(block), None, block.splitlines(keepends=True), name)
        exec(compile(block, name, "exec"), namespace)


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is installed by .ci/run")
def test_site_builds_in_strict_mode(tmp_path):
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
