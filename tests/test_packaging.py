"""What a package index shows and what a type checker reads: the wheel's metadata and mypy.

The wheel (``pip wheel``, as ``tests/test_install.py`` builds it) carries the SPDX license,
the project URLs, the classifiers and ``requires-python``, and installs RL Zoo's settings
files; ``py.typed`` is backed by ``mypy`` passing on the three packages with the
``[tool.mypy]`` settings of ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    return next(out.glob("drum_env-*.whl"))


@pytest.mark.slow
def test_the_wheel_metadata_has_license_urls_and_classifiers(wheel):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(zf.read(name).decode())
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.10"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = set(meta.get_all("Classifier"))
    for wanted in ("Intended Audience :: Science/Research", "Typing :: Typed",
                   "Programming Language :: Python :: 3.11"):  # fmt: skip
        assert wanted in classifiers, wanted
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Topic ::") for c in classifiers)
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression


@pytest.mark.slow
def test_the_wheel_installs_rl_zoos_settings_beside_the_packages(wheel):
    zf = zipfile.ZipFile(wheel)
    data = f"drum_env-{wheel.name.split('-')[1]}.data/data/share/drum-env/hyperparams"
    for algo in ("ppo", "a2c"):
        assert f"{data}/{algo}.yml" in zf.namelist(), [n for n in zf.namelist() if ".data/" in n]
        assert zf.read(f"{data}/{algo}.yml") == (ROOT / "hyperparams" / f"{algo}.yml").read_bytes()


def test_requires_python_matches_the_checkers_target():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lowest = project["project"]["requires-python"].removeprefix(">=")
    assert project["tool"]["mypy"]["python_version"] == lowest
    assert project["tool"]["ruff"]["target-version"] == "py" + lowest.replace(".", "")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed: pip install 'drum-env[dev]'")
def test_the_public_packages_type_check(tmp_path):
    # py.typed tells type checkers to trust these annotations: mypy must pass on them
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
