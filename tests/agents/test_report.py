"""drum-env report: the listening page of a benchmark or a run folder, checked as HTML and in a
real headless browser (Chromium from the system packages, driven by playwright)."""

import functools
import http.server
import json
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from agents.cli import main
from agents.evaluation.benchmark import BenchmarkConfig, run_benchmark
from agents.evaluation.report import ReportConfig, choose_primers, write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PRIMERS = 2


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The smoke benchmark (ppo, sb3-ppo, random; seconds) and its page with two primers."""
    root = tmp_path_factory.mktemp("report")
    config = BenchmarkConfig.preset("smoke", out=str(root / "bench"), work=str(root / "work"),
                                    progress=False)  # fmt: skip
    run_benchmark(config)
    result = write_report(ReportConfig(folder=str(root / "bench"), primers=PRIMERS))
    return root, result


class _Page(HTMLParser):
    """The parts of the page a test looks at: result rows, and per primer its players."""

    def __init__(self):
        super().__init__()
        self.table, self.cell, self.rows, self.sections = None, None, [], []
        self.title = None
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.table = attrs.get("class")
        elif tag == "tr" and self.table == "results":
            self.rows.append([])
        elif tag == "td" and self.table == "results":
            self.cell = ""
        elif tag == "section":
            self.sections.append({"title": "", "players": []})
        elif tag == "h3" and self.sections:
            self.title = ""
        elif tag == "figure" and self.sections:
            self.sections[-1]["players"].append({"class": attrs["class"], "label": ""})
        elif tag == "figcaption":
            self.cell = ""
        elif tag in ("audio", "img") and self.sections:
            self.sections[-1]["players"][-1][tag] = attrs["src"]
        if tag in ("audio", "img") and "src" in attrs:
            self.srcs.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        elif tag == "td" and self.cell is not None and self.table == "results":
            self.rows[-1].append(self.cell)
            self.cell = None
        elif tag == "figcaption":
            self.sections[-1]["players"][-1]["label"] = self.cell
            self.cell = None
        elif tag == "h3" and self.title is not None:
            self.sections[-1]["title"] = self.title
            self.title = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.title is not None:
            self.title += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_page_has_a_row_per_agent_and_a_player_per_agent_per_primer(bench):
    root, result = bench
    payload = json.loads((root / "bench" / "shapings.json").read_text())
    page = _parse(result.page)
    assert result.page == root / "bench" / "report" / "index.html"  # the default --out
    # the results table: one row per agent of the benchmark, with its reported SE
    agents = [a for cells in payload["summary"].values() for a in cells]
    assert sorted(row[0] for row in page.rows if row) == sorted(agents) == sorted(
        ["ppo", "sb3-ppo", "random"])
    ppo = next(row for row in page.rows if row and row[0] == "ppo")
    assert f"(SE {payload['summary']['aligned']['ppo']['headline_se']:.3f})" in ppo[2]
    # every primer: the real continuation first, then one player per agent, each playable
    assert result.agents == ("ppo", "sb3-ppo", "random") and result.primers == PRIMERS
    assert len(page.sections) == PRIMERS
    heldout = set(payload["heldout_names"])
    for section in page.sections:
        players = section["players"]
        assert [p["label"] for p in players] == ["real continuation", "ppo", "sb3-ppo", "random"]
        assert players[0]["class"] == "take real"
        assert all("audio" in p and "img" in p for p in players)
        name = section["title"].split(": ", 1)[1].split(",")[0]
        assert name in heldout  # primers come from the benchmark's held-out split
    for src in page.srcs:  # everything beside the page, nothing from elsewhere
        assert "/" not in src and (result.page.parent / src).is_file()
    assert (result.page.parent / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_the_benchmark_saves_its_sb3_models_as_data(bench):
    from agents.evaluation.rollout import SB3Policy, load_any_policy

    root, _ = bench
    model = root / "work" / "runs" / "aligned" / "sb3-ppo" / "seed0" / "model.zip"
    assert isinstance(load_any_policy(model), SB3Policy)


def test_the_same_seed_gives_the_same_page(bench, tmp_path):
    root, result = bench
    again = write_report(ReportConfig(folder=str(root / "bench"), primers=PRIMERS,
                                      out=str(tmp_path / "again")))  # fmt: skip
    wavs = sorted(p.name for p in result.page.parent.glob("*.wav"))
    assert len(wavs) == PRIMERS * 4
    for name in wavs:
        assert (tmp_path / "again" / name).read_bytes() == (result.page.parent / name).read_bytes()
    other = write_report(ReportConfig(folder=str(root / "bench"), primers=PRIMERS, seed=1,
                                      out=str(tmp_path / "other")))  # fmt: skip
    titles = [s["title"] for s in _parse(again.page).sections]
    assert titles != [s["title"] for s in _parse(other.page).sections]


def test_a_page_is_not_overwritten_without_force(bench, capsys):
    root, result = bench
    before = result.page.read_bytes()
    assert main(["report", str(root / "bench")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "already holds a page" in err and "--force" in err
    assert result.page.read_bytes() == before


def test_a_folder_that_is_neither_names_it_in_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("drum-env report: error: ") and str(tmp_path) in err
    assert "neither a benchmark folder" in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_benchmark_without_a_saved_model_says_so(bench, tmp_path):
    root, _ = bench
    work = tmp_path / "work"
    shutil.copytree(root / "work", work)
    (work / "runs" / "aligned" / "sb3-ppo" / "seed0" / "model.zip").unlink()
    bench_dir = tmp_path / "bench"
    shutil.copytree(root / "bench", bench_dir, ignore=shutil.ignore_patterns("report"))
    payload = json.loads((bench_dir / "shapings.json").read_text())
    payload["config"]["work"] = str(work)
    (bench_dir / "shapings.json").write_text(json.dumps(payload))
    result = write_report(ReportConfig(folder=str(bench_dir), primers=1))
    assert result.agents == ("ppo", "random")
    players = _parse(result.page).sections[0]["players"]
    assert [p["label"] for p in players] == ["real continuation", "ppo", "sb3-ppo", "random"]
    assert "audio" not in players[2]
    assert "no saved model" in result.page.read_text()


@pytest.mark.slow
def test_a_train_run_folder_shows_its_takes_and_curves(tmp_path):
    from agents.training.ppo import PPOConfig, train

    run = tmp_path / "run"
    train(PPOConfig(out=str(run), num_envs=4, num_steps=32, total_timesteps=256, progress=False))
    assert main(["report", str(run), "--out", str(tmp_path / "page"), "--primers", "2"]) == 0
    page = _parse(tmp_path / "page" / "index.html")
    assert not page.rows  # a single run has no held-out scores
    assert [[p["label"] for p in s["players"]] for s in page.sections] == [
        ["real continuation", "ppo"]] * 2
    assert (tmp_path / "page" / "curves.png").is_file()


def test_a_missing_dependency_asks_for_the_report_extra():
    from agents.extras import extra_for

    assert extra_for("report", "torch") == "report"  # torch, and FluidSynth where it can


def test_choose_primers_is_seeded_and_takes_different_files_first():
    windows = np.array([[0, 0], [0, 16], [0, 32], [1, 0], [2, 0], [2, 16]])
    first = choose_primers(windows, 3, seed=5)
    assert sorted(first[:, 0].tolist()) == [0, 1, 2]
    assert (choose_primers(windows, 3, seed=5) == first).all()
    assert len(choose_primers(windows, 10, seed=0)) == len(windows)


def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


_CHECK_MEDIA = """async (decode) => {
    const audio = [];
    for (const a of document.querySelectorAll('audio')) {
        a.muted = true;
        let played = 'ok';
        try { await a.play(); a.pause(); } catch (e) { played = String(e); }
        let decoded = null;
        if (decode) {
            const ctx = new OfflineAudioContext(1, 1, 22050);
            const data = await (await fetch(a.currentSrc)).arrayBuffer();
            decoded = (await ctx.decodeAudioData(data)).duration;
        }
        audio.push({src: a.currentSrc, played, ready: a.readyState, duration: a.duration,
                    decoded});
    }
    const images = [...document.images].map(i => ({src: i.currentSrc, width: i.naturalWidth,
                                                    complete: i.complete}));
    return {audio, images};
}"""


def _watch(page) -> list[str]:
    """What goes wrong while ``page`` loads: console errors, page errors, failed requests."""
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)  # fmt: skip
    return problems


def test_the_page_plays_in_headless_chromium(bench):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium; "
                    "scripts/setup_system.sh installs it)")  # fmt: skip
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install "
                                   "'drum-env[report]')")  # fmt: skip
    _, result = bench
    folder = result.page.parent
    server = _serve(folder)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                urls = [(result.page.resolve().as_uri(), False),
                        (f"http://127.0.0.1:{server.server_address[1]}/index.html", True)]
                for url, decode in urls:
                    page = browser.new_page()
                    problems = _watch(page)
                    page.goto(url, wait_until="load")
                    media = page.evaluate(_CHECK_MEDIA, decode)
                    page.close()
                    assert not problems, (url, problems)
                    assert len(media["audio"]) == PRIMERS * 4
                    for a in media["audio"]:
                        assert a["played"] == "ok", a
                        assert a["ready"] >= 1 and 0 < a["duration"] < 60, a  # HAVE_METADATA
                        if decode:
                            assert a["decoded"] == pytest.approx(a["duration"], rel=0.01), a
                    assert len(media["images"]) == 1 + PRIMERS * 4  # the curves and the rolls
                    assert all(i["complete"] and i["width"] > 0 for i in media["images"])
            finally:
                browser.close()
    finally:
        server.shutdown()
