"""The docs site builds with ``mkdocs build --strict`` (what CI runs), from the docstrings.

A docstring that breaks the build (a bad indentation, a ``[...]`` read as a broken link), a
README section that the pages include and that is renamed, or a module that moved, fails here.
"""

from __future__ import annotations

import importlib.util
import os
import re
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
    home = (site / "index.html").read_text()  # the take, to see and to hear
    assert 'src="assets/take.wav"' in home and (site / "assets" / "take.wav").is_file()
    assert "ent_coef" in (site / "agents" / "baselines" / "index.html").read_text()
    pages = list(site.rglob("index.html"))
    assert len(pages) >= 10
    for page in pages:  # reStructuredText roles shown as code, not as ":class:`...`"
        assert ":class:" not in page.read_text(), page


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, '-' for ' '."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_links_resolve():
    # the first screen's picture, take and table of contents: every relative link a user clicks
    readme = (ROOT / "README.md").read_text()
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)  # links inside code are not links
    anchors = {_github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M)}
    targets = re.findall(r"\]\(([^)\s]+)\)", prose) + re.findall(r'src="([^"]+)"', prose)
    assert "docs/assets/take.png" in targets and "docs/assets/take.wav" in targets
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"README links to a missing heading {target}"
        else:
            assert (ROOT / target).is_file(), f"README links to a missing file {target}"
    wav = (ROOT / "docs" / "assets" / "take.wav").read_bytes()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
