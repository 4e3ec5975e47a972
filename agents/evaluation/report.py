"""The listening page: ``drum-env report RUN_OR_BENCHMARK_DIR`` writes one static web page.

Every music-generation paper has one. :func:`write_report` reads a folder and writes
``index.html`` with everything it shows beside it in the same folder (WAV audio, PNG pictures;
no script, no font or stylesheet from elsewhere), so the page opens from disk or from any
static host:

* a **benchmark folder** (``shapings.json`` of ``drum-env benchmark``): the results table (one
  row per agent and shaping: the final held-out headline, mean ± std over seeds with the standard
  error the benchmark reports, the song term, the velocity headline), the ceiling and the floors,
  the curves (``shapings.png``, or drawn from ``shapings.json`` when it is missing), and for
  ``primers`` windows of the benchmark's held-out split (``work/split/heldout``) the real
  continuation and each agent's take side by side. Each agent plays the model its run saved
  under the benchmark's ``work`` folder (the runs of the smallest seed of the table): the custom
  PPO's ``policy.pt``, SB3's ``model.zip``, the pretrained policy; loop-the-primer and the random
  player are rebuilt as the benchmark plays them
  (:func:`agents.evaluation.benchmark.player_policy`).
* a **run folder** (``config.json`` beside ``policy.pt``, ``checkpoint.pt`` or ``model.zip``:
  ``drum-env train``, ``pretrain`` or ``baseline``): its takes against the real continuation on
  ``primers`` windows of the run's own data (a single run has no held-out split; the page says
  so) and its curves, from its TensorBoard logs (``tb/``) or else its checkpoint's history.

Models are read only by the loaders that never run code from a file
(:func:`agents.evaluation.rollout.load_any_policy`: ``torch.load(weights_only=True)``, SB3 zips
as data). The primers are a seeded choice (``seed``; different files first), and every take is
played with that seed, so the page is the same on every run. Each take is one episode of
``DrumCompose-v0`` on the primer's window (the whole source sequence is the env's data, so the
song targets are the evaluation's), rendered by :func:`drum_env.audio.save_wav` at the primer's
recorded tempo (120 bpm when the file records none) and drawn by
:func:`drum_env.render.save_piano_roll_png` (primer shaded).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from agents.evaluation.report_page import Media, Page, PrimerMedia, ResultRow, page_html
from agents.task import RunConfig, TaskConfig, check_int, check_path

__all__ = ["ReportConfig", "ReportResult", "choose_primers", "write_report"]

PAGE = "index.html"
"""The page's file name in ``out``."""
MAX_PRIMERS = 32
"""Most primers a page plays (each adds one player per agent)."""
_CURVE_TAGS = (
    "charts/episodic_return", "charts/episode_song_raw", "eval/episode_return", "eval/song_raw",
    "rollout/ep_rew_mean", "pretrain/loss", "pretrain/val_loss", "losses/explained_variance",
)  # fmt: skip
_MODEL_FILES = ("policy.pt", "checkpoint.pt", "model.zip")


@dataclass(frozen=True)
class ReportConfig(RunConfig):
    """A listening page: the folder it shows, how many primers, where to write. Frozen.

    The run settings come from :class:`~agents.task.RunConfig`: ``out`` is the page's folder
    (default ``FOLDER/report``; a folder that holds a page already is refused unless
    ``force``, which replaces it); ``seed`` chooses the primers and seeds the takes;
    ``threads`` sets torch's threads while the policies play; ``device``, ``amp``, ``progress``
    and ``resume`` are not used.
    """

    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("device", "amp", "progress", "resume")

    folder: str = field(kw_only=True)
    """A benchmark's output folder (``shapings.json``) or a run folder (``config.json`` and
    ``policy.pt``, ``checkpoint.pt`` or ``model.zip``)."""
    primers: int = 3
    """Primers to play (1 to 32): windows of the benchmark's held-out split (of a run's own
    data), a seeded choice."""

    def __post_init__(self) -> None:
        check_path(self, "folder", optional=False)
        if self.out is None:
            object.__setattr__(self, "out", str(Path(self.folder) / "report"))
        self._check_run()
        check_int("primers", self.primers, 1, MAX_PRIMERS)


class ReportResult(NamedTuple):
    """What :func:`write_report` wrote."""

    page: Path
    """``out/index.html``."""
    kind: str
    """``"benchmark"`` or ``"run"``."""
    agents: tuple[str, ...]
    """The labels of the players whose takes the page holds (the real continuation aside)."""
    primers: int
    files: list[Path]
    """Every file written (the page last)."""


class _Agent(NamedTuple):
    """A player of the page: its label, and how to make its policy (or why it has none)."""

    label: str
    load: Callable[[], tuple[Callable[[int], Any], Any]] | None
    """Returns ``(make, velocity_bins)``: ``make(seed)`` is a fresh seeded policy function."""
    note: str = ""


class _Source(NamedTuple):
    """What a folder gives the page."""

    kind: str
    task: TaskConfig
    data: Any  # the env's data of the primers (a folder, or None: the built-in corpus)
    agents: list[_Agent]
    page: Page  # the page without primers and curves
    curves: Callable[[Path], str]  # writes the curves' picture; returns a note


# ----------------------------------------------------------------------------- primers


def choose_primers(windows: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A seeded choice of ``count`` windows, windows of different sequences first.

    Args:
        windows: int array (N, 2) of ``(sequence, start)`` (``ReferenceData.windows``).
        count: windows wanted (all of them when there are fewer).
        seed: seed of the choice.

    Returns:
        int array (min(count, N), 2), in the order chosen.

    >>> choose_primers(np.array([[0, 0], [0, 16], [1, 0]]), 2, 0)[:, 0].tolist() in ([0, 1],
    ...                                                                                 [1, 0])
    True
    """
    order = np.random.default_rng(seed).permutation(len(windows))
    seen: set[int] = set()
    first: list[int] = []
    rest: list[int] = []
    for i in order:
        (rest if int(windows[i, 0]) in seen else first).append(i)
        seen.add(int(windows[i, 0]))
    return np.asarray(windows)[(first + rest)[:count]].reshape(-1, 2)


def _policy_loader(path: Path) -> Callable[[], tuple[Callable[[int], Any], Any]]:
    """A loader of a policy file (``policy.pt``, ``checkpoint.pt``, ``model.zip``), as data."""

    def load() -> tuple[Callable[[int], Any], Any]:
        from agents.evaluation.rollout import load_any_policy, policy_fn
        from agents.policies.policy import policy_velocity_bins

        policy = load_any_policy(path)
        return (lambda seed: policy_fn(policy, seed=seed)), policy_velocity_bins(policy)

    return load


# ----------------------------------------------------------------------------- benchmark


def _find_work(folder: Path, work: str) -> Path:
    """The benchmark's ``work`` folder: as recorded, else relative to the folder or its parents."""
    candidates = [Path(work)]
    if not Path(work).is_absolute():
        candidates += [parent / work for parent in (folder, *folder.resolve().parents)]
    for candidate in candidates:
        if (candidate / "split" / "heldout").is_dir():
            return candidate
    raise FileNotFoundError(
        f"the work folder {work!r} of the benchmark in {str(folder)!r} (its split and its runs' "
        "models) is not found here, nor relative to the benchmark folder or its parents; run "
        "drum-env report where the benchmark ran"
    )


def _label(agent: str, shaping: str, shapings: set[str]) -> str:
    from agents.evaluation.benchmark_report import ANY_SHAPING

    return agent if shaping == ANY_SHAPING or len(shapings) == 1 else f"{agent} ({shaping})"


def _benchmark(folder: Path) -> _Source:
    from agents.evaluation import benchmark_report as br
    from agents.evaluation.benchmark import pretrain_dir, run_dir
    from agents.evaluation.benchmark_players import player_policy, training_rates

    payload = json.loads((folder / "shapings.json").read_text(encoding="utf-8"))
    cfg, summary = payload["config"], payload["summary"]
    task = TaskConfig(**{f.name: cfg[f.name] for f in fields(TaskConfig) if f.name in cfg})
    work = _find_work(folder, cfg["work"])
    seed = min((int(r["seed"]) for r in payload["rows"] if r["final"]), default=0)
    cells = [(s, a) for s in (*br.SHAPING_NAMES, br.ANY_SHAPING) for a in br.AGENTS
             if a in summary.get(s, {})]  # fmt: skip
    trained = {s for s, _ in cells if s != br.ANY_SHAPING}

    def player(agent: str) -> Callable[[], tuple[Callable[[int], Any], Any]]:
        """Loop-the-primer or the random player, at the training split's rates and bins."""

        def load() -> tuple[Callable[[int], Any], Any]:
            from drum_env.core import load_reference

            train = load_reference(work / "split" / "train", task.seq_len, task.steps_per_bar,
                                   task.bars_per_phrase)  # fmt: skip
            rates = training_rates(train.values, task.velocity_levels)
            return (lambda s: player_policy(agent, task, rates, s)[0]), rates.velocity_bins

        return load

    agents, rows = [], []
    for shaping, agent in cells:
        c = summary[shaping][agent]
        label = _label(agent, shaping, trained)
        rows.append(ResultRow(
            agent, "any (does not train)" if shaping == br.ANY_SHAPING else shaping,
            br.fmt(c["headline"], c["headline_std"], c["seeds"], se=c.get("headline_se", math.nan)),
            br.fmt(c["song_raw"], c["song_raw_std"], c["seeds"]),
            br.fmt(c.get("velocity_headline", math.nan), c.get("velocity_headline_std", math.nan),
                   c["seeds"]), int(c["seeds"]),
        ))  # fmt: skip
        if agent in ("loop", "random"):
            agents.append(_Agent(label, player(agent)))
            continue
        if agent == "pretrained":
            path = pretrain_dir(work, seed) / "policy.pt"
        else:
            name = "model.zip" if agent in br.SB3_ALGOS else "policy.pt"
            path = run_dir(work, shaping, agent, seed) / name
        if path.is_file():
            agents.append(_Agent(label, _policy_loader(path)))
        else:
            old = " (benchmarks before drum-env 0.4 saved no SB3 model)" if agent in \
                br.SB3_ALGOS else ""  # fmt: skip
            agents.append(_Agent(label, None, f"no saved model at {path}{old}"))
    se = payload.get("reference_se") or {}
    names = {"ceiling": "ceiling: real vs real", "uniform_random": "floor: uniform random",
             "density_random": "floor: density-matched random", "silence": "floor: silence"}
    refs = []
    for key, text in names.items():
        if key in payload["references"]:  # (mean, std over the halvings) and a bootstrap SE
            mean, std = payload["references"][key]
            refs.append((text, br.fmt(mean, std, 2, se=se.get(key, math.nan))))
    intro = [
        f"Benchmark of {payload['data']}: {payload['train_sequences']} training and "
        f"{payload['heldout_sequences']} held-out sequences ({payload['split']}); "
        f"{cfg['total_timesteps']:,} env steps per run. Score: the held-out headline (mean "
        "overlapping area of the feature distributions of the composed part and of the real "
        "continuations; 1 = indistinguishable from real, higher is better), mean ± std over "
        "seeds, with its standard error (SE).",
        f"Made by: {payload.get('command') or 'run_benchmark'}",
    ]
    footer = [br.GROOVE_ATTRIBUTION] if "groove" in str(cfg.get("data") or "").lower() else []
    page = Page(f"Listening page: {folder.name}", str(folder), intro, rows, refs, footer=footer)

    def curves(path: Path) -> str:
        png = folder / "shapings.png"
        if png.is_file():
            shutil.copyfile(png, path)
            return "Learning curves and final scores: the benchmark's shapings.png."
        br.plot_curves(path, SimpleNamespace(total_timesteps=cfg["total_timesteps"]), payload,
                       payload["rows"], summary)  # fmt: skip
        return "Learning curves and final scores, drawn from shapings.json."

    heldout = work / "split" / "heldout"
    primers = (f"Primers: windows of the benchmark's held-out split ({heldout}), a seeded "
               f"choice; every agent plays its run of seed {seed}.")  # fmt: skip
    page = page._replace(primers_note=primers)
    return _Source("benchmark", task, heldout, agents, page, curves)


# ----------------------------------------------------------------------------- a run


def _run_label(folder: Path, config: dict[str, Any]) -> tuple[str, Path]:
    """The run's label (``ppo``, ``pretrained``, ``sb3-ppo`` ...) and the model it plays."""
    if (folder / "model.zip").is_file():
        return f"sb3-{config.get('algo', 'ppo')}", folder / "model.zip"
    if (folder / "checkpoint.pt").is_file():
        final = folder / "policy.pt"
        return "ppo", final if final.is_file() else folder / "checkpoint.pt"
    return "pretrained", folder / "policy.pt"


def _scalars(folder: Path) -> dict[str, tuple[list[float], list[float]]]:
    """The run's curves: ``tag -> (steps, values)`` from ``tb/``, else the checkpoint's history."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    tb = folder / "tb"
    if tb.is_dir():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for root, _, files in sorted(os.walk(tb)):
            if not any(".tfevents." in f for f in files):
                continue
            events = EventAccumulator(root, size_guidance={"scalars": 0, "audio": 1, "images": 1,
                                                           "tensors": 1, "histograms": 1})
            events.Reload()
            for tag in events.Tags().get("scalars", []):
                if tag in _CURVE_TAGS:
                    xs, ys = series.setdefault(tag, ([], []))
                    for e in events.Scalars(tag):
                        xs.append(float(e.step))
                        ys.append(float(e.value))
    elif (folder / "checkpoint.pt").is_file():
        from agents.training.checkpoint import load_checkpoint

        for row in load_checkpoint(folder / "checkpoint.pt").get("history", []):
            for tag in _CURVE_TAGS:
                if tag in row and math.isfinite(row[tag]):
                    xs, ys = series.setdefault(tag, ([], []))
                    xs.append(float(row["global_step"]))
                    ys.append(float(row[tag]))
    return {tag: series[tag] for tag in _CURVE_TAGS if tag in series}


def _plot_scalars(series: dict[str, tuple[list[float], list[float]]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = list(series.items())[:4]
    fig = Figure(figsize=(4.5 * len(shown), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    for k, (tag, (xs, ys)) in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), k + 1)
        order = np.argsort(xs, kind="stable")
        ax.plot(np.asarray(xs)[order], np.asarray(ys)[order], marker="o", ms=2)
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, format="png")


def _run(folder: Path) -> _Source:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{str(folder / 'config.json')!r} holds no run config (a JSON object)")
    task = TaskConfig(**{f.name: config[f.name] for f in fields(TaskConfig) if f.name in config})
    label, model = _run_label(folder, config)
    source = "the built-in synthetic corpus" if task.data is None else f"data {task.data!r}"
    intro = [f"Run {folder} ({label}, {model.name}): shaping {task.shaping}, episodes of "
             f"{task.seq_len} steps with a {task.prompt_bars}-bar primer, trained on {source}."]
    primers = ("Primers: windows of the run's own data, a seeded choice: a single run has no "
               "held-out split (drum-env benchmark plays held-out primers).")  # fmt: skip
    page = Page(f"Listening page: {folder.name}", str(folder), intro, primers_note=primers)

    def curves(path: Path) -> str:
        series = _scalars(folder)
        if not series:
            return "No curves: the run recorded no TensorBoard logs (tb/) or checkpoint history."
        _plot_scalars(series, path)
        return "Training curves from " + ("tb/." if (folder / "tb").is_dir() else "checkpoint.pt.")

    return _Source("run", task, task.data, [_Agent(label, _policy_loader(model))], page, curves)


def _read(folder: Path) -> _Source:
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder {str(folder)!r}")
    if (folder / "shapings.json").is_file():
        return _benchmark(folder)
    if (folder / "config.json").is_file() and any((folder / m).is_file() for m in _MODEL_FILES):
        return _run(folder)
    raise ValueError(
        f"{str(folder)!r} is neither a benchmark folder (no shapings.json) nor a run folder (no "
        f"config.json beside {', '.join(_MODEL_FILES)})"
    )


# ----------------------------------------------------------------------------- the page


def _play(make: Callable[[int], Any], bins: Any, task: TaskConfig, ref: Any,
          window: np.ndarray, seed: int) -> np.ndarray:  # fmt: skip
    """One episode on ``window`` (the primer and the env's data): the take with velocities."""
    import torch

    from agents.evaluation.rollout import rollout_episodes

    i, start = int(window[0]), int(window[1])
    view = SimpleNamespace(sequences=[ref.values[i]], sample_indices=np.array([[0, start]]),
                           names=[ref.names[i]])  # fmt: skip
    with torch.random.fork_rng(devices=[]):  # SB3 samples from the global generator
        torch.manual_seed(seed)
        played = rollout_episodes(make(seed), task.env_kwargs(view, velocity_bins=bins),
                                  episodes=1, num_envs=1, seed=seed)  # fmt: skip
    assert played.takes is not None  # rollout_episodes always records the takes
    return played.takes[0]


def _previous(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    names = [PAGE, "curves.png"]
    found = [out / n for n in names if (out / n).is_file() or (out / n).is_symlink()]
    return found + sorted(p for p in out.glob("primer*") if p.suffix in (".wav", ".png"))


def write_report(config: ReportConfig) -> ReportResult:
    """Write the listening page of ``config.folder`` into ``config.out`` (see the module doc).

    Args:
        config: the folder, the primers, the page's folder and seed.

    Returns:
        ReportResult.

    Raises:
        FileNotFoundError: the folder, or a benchmark's work folder, is missing.
        ValueError: the folder is neither a benchmark nor a run folder (the message names it).
        agents.training.runs.RunDirError: ``out`` holds a page and ``force`` is not set, or is a
            file.
    """
    from agents.training.runs import RunDirError, RunLock

    source = _read(Path(config.folder))
    assert config.out is not None  # __post_init__ fills it in
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"out {str(out)!r} is a file, not a folder")
    previous = _previous(out)
    if previous and not config.force:
        raise RunDirError(f"out {str(out)!r} already holds a page ({previous[0].name}); pass "
                          "--force to replace it, or choose another --out")  # fmt: skip
    with RunLock(out), config.torch_threads():
        for path in previous:
            path.unlink()
        return _write(config, source, out)


def _write(config: ReportConfig, source: _Source, out: Path) -> ReportResult:
    from drum_env.audio import save_wav
    from drum_env.core import load_reference
    from drum_env.render import save_piano_roll_png

    task, files = source.task, []
    ref = load_reference(source.data, task.seq_len, task.steps_per_bar, task.bars_per_phrase)
    windows = choose_primers(ref.windows, config.primers, config.seed)
    played: list[tuple[_Agent, Any, Any]] = []  # (agent, make, bins), or the note
    for agent in source.agents:
        try:
            make, bins = agent.load() if agent.load is not None else (None, None)
        except (FileNotFoundError, ValueError) as exc:
            agent, make, bins = agent._replace(note=f"cannot be played: {exc}"), None, None
        played.append((agent, make, bins))
    spb, prompt, primers = task.steps_per_bar, task.prompt_steps, []

    def media(label: str, stem: str, take: np.ndarray, bpm: float) -> Media:
        files.append(save_wav(take, out / f"{stem}.wav", bpm=bpm, steps_per_bar=spb))
        files.append(save_piano_roll_png(take, out / f"{stem}.png", steps_per_bar=spb,
                                         prompt_steps=prompt, title=label, bpm=bpm))  # fmt: skip
        return Media(label, f"{stem}.wav", f"{stem}.png")

    for k, window in enumerate(windows):
        i, start = int(window[0]), int(window[1])
        bpm = (ref.tempos[i] if ref.tempos else None) or 120.0
        real = np.asarray(ref.values[i][start : start + task.seq_len], dtype=np.float32)
        name = _shown_name(ref.names[i], source.data)
        bars = f"bars {start // spb + 1}-{(start + task.seq_len) // spb}"
        players = [media("real continuation", f"primer{k + 1}_real", real, bpm)]
        for j, (agent, make, bins) in enumerate(played):
            if make is None:
                players.append(Media(agent.label, None, None, agent.note))
                continue
            take = _play(make, bins, task, ref, window, config.seed)
            players.append(media(agent.label, f"primer{k + 1}_agent{j + 1}", take, bpm))
        primers.append(PrimerMedia(f"Primer {k + 1}: {name}, {bars}, {bpm:g} bpm", players))
    curves_note = source.curves(out / "curves.png")
    curves = "curves.png" if (out / "curves.png").is_file() else None
    if curves is not None:
        files.append(out / "curves.png")
    note = (f"{source.page.primers_note} The first {task.prompt_steps} steps (shaded in the "
            f"piano rolls) are the primer; every take is sampled with seed {config.seed}.")
    page = source.page._replace(curves=curves, curves_note=curves_note, primers=primers,
                                primers_note=note)  # fmt: skip
    from dataset.io import atomic_write

    html = page_html(page).encode("utf-8")
    files.append(atomic_write(out / PAGE, lambda f: f.write(html), durable=False))
    labels = tuple(agent.label for agent, make, _ in played if make is not None)
    return ReportResult(out / PAGE, source.kind, labels, len(windows), files)


def _shown_name(name: str, data: Any) -> str:
    """A sequence's name relative to the data folder (the file's name when it is not under it)."""
    if data is None:
        return name
    try:
        return Path(name).resolve().relative_to(Path(data).resolve()).with_suffix("").as_posix()
    except ValueError:
        return Path(name).stem
