"""The docs site builds with ``mkdocs build --strict`` (what CI runs), from the docstrings.

A docstring that breaks the build (a bad indentation, a ``[...]`` read as a broken link), a
README section that the pages include and that is renamed, or a module that moved, fails here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python")
           if importlib.util.find_spec(m.split(".")[0]) is None]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"{MISSING} not installed: pip install 'drum-env[docs]'")
def test_the_docs_site_builds_strict_from_the_docstrings(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    env_page = (site / "env" / "index.html").read_text()
    # the env's class docstring (its Gymnasium sections) and the README's section, both there
    for text in ("Observation Space", "Episode End", "DrumComposeVectorEnv", "vector_entry_point"):
        assert text in env_page, text
    assert "drum-env generate POLICY" in (site / "cli" / "index.html").read_text()
    assert "ent_coef" in (site / "agents" / "baselines" / "index.html").read_text()
    pages = list(site.rglob("index.html"))
    assert len(pages) >= 10
    for page in pages:  # reStructuredText roles shown as code, not as ":class:`...`"
        assert ":class:" not in page.read_text(), page
