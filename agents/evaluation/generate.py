"""Compose drum sequences with a trained policy: ``.mid``, ``.npz`` and a piano-roll ``.png``.

* :class:`GenerateConfig`: the task (from :class:`~agents.task.TaskConfig`; the metre and the
  context default to the policy file's own), the policy file, the takes and where to write.
* :func:`generate`: ``generate(config) -> GenerateResult``.
* :func:`load_any_policy`, :func:`policy_fn`: a policy file as a batched numpy policy (the
  benchmark and the tuner evaluate through these too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from agents.evaluation.rollout import Rollouts, load_any_policy, policy_fn, rollout_episodes
from agents.policies.compat import check_policy_fits
from agents.task import RunConfig, TaskConfig, check_bool, check_int, check_number, check_path
from agents.training.runs import RunDirError, RunLock, write_json
from dataset.io import MAX_BPM, MIN_BPM

__all__ = [
    "POLICY_FIELDS",
    "GenerateConfig",
    "GenerateResult",
    "generate",
]

POLICY_FIELDS: tuple[str, ...] = ("context_steps", "steps_per_bar", "bars_per_phrase",
                                  "velocity_levels")  # fmt: skip
"""The task fields a policy file fixes; :class:`GenerateConfig` takes them from the file unless
given."""

_TAKE_SUFFIXES = (".mid", ".npz", ".png")


@dataclass(frozen=True)
class GenerateConfig(RunConfig, TaskConfig):
    """Takes composed by one policy: the task, the policy file, how many takes and where. Frozen.

    The task settings come from :class:`~agents.task.TaskConfig`, except that
    ``context_steps``, ``steps_per_bar``, ``bars_per_phrase`` and ``velocity_levels`` default to
    the policy file's own values (read on construction when any of them is ``None``) and
    ``shaping`` defaults to ``aligned-raw``, so the returns of different policies share one
    scale. A policy with velocity levels plays in envs built with its own velocity bins, so the
    takes' velocities are the levels it learned. The run settings come from
    :class:`~agents.task.RunConfig`: ``out`` is the folder of the takes (``take{i}.mid``,
    ``take{i}.npz``, ``take{i}.png`` and ``summary.json``; a folder that already holds takes is
    refused unless ``force``, which replaces them); ``seed`` seeds the episodes (which primers
    are drawn) and the sampling of the actions; the policy plays on the CPU with torch's own
    threads, so ``device``, ``threads``, ``amp``, ``progress`` and ``resume`` are not used.
    """

    DEFAULT_OUT: ClassVar[str] = "runs/generate"
    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = (
        "device", "threads", "amp", "progress", "resume",
    )  # fmt: skip

    context_steps: int | None = None
    """Steps of the canvas the observation shows; ``None``: the policy file's (any length up to
    the policy's position embedding works)."""
    steps_per_bar: int | None = None
    """Steps in one bar; ``None``: the policy file's (a policy plays only its own metre)."""
    bars_per_phrase: int | None = None
    """Bars in one phrase; ``None``: the policy file's."""
    velocity_levels: int | None = None
    """Velocity classes of the actions (0: binary hits); ``None``: the policy file's (a policy
    plays only its own number of classes)."""
    shaping: str = "aligned-raw"
    """Reward shaping of the returns reported per take, a name of ``drum_env.SHAPINGS``;
    unnormalised by default so that returns compare across policies and runs."""
    policy: str = field(kw_only=True)
    """The policy: a ``policy.pt`` (``drum-env pretrain`` or ``train``), a PPO
    ``checkpoint.pt``, or an SB3 ``model.zip`` (``drum-env baseline``)."""
    num: int = 4
    """Number of takes (episodes played side by side)."""
    deterministic: bool = False
    """Hit when the policy's probability is > 0.5 instead of sampling."""
    temperature: float = 1.0
    """Sample from ``logits / temperature`` (> 0; below 1 sharper, 1 the policy as it is); not
    for SB3 models. The README's Results choose it on validation files."""
    velocity_anchor: float = 0.0
    """Re-weight each hit's velocity class by the primer's dynamics at that bar position, this
    strongly (>= 0; 0: off; :mod:`agents.evaluation.anchor`); policies with velocity levels
    only. The hits stay the policy's own."""
    bpm: float | None = None
    """Tempo of the takes, quarter notes per minute, from 20 to 400; ``None``: each primer's
    recorded tempo (``drum-env convert`` records it), else 120."""
    wav: bool = False
    """Also render each take as ``take{i}.wav``, at one fixed gain for every take: through
    FluidSynth and a General MIDI soundfont where installed, else the built-in numpy drum kit
    (:func:`drum_env.audio.render_audio`, ``synth="auto"``)."""

    def __post_init__(self) -> None:
        check_path(self, "policy", optional=False)
        missing = [name for name in POLICY_FIELDS if getattr(self, name) is None]
        if missing:
            own = load_any_policy(self.policy).config
            for name in missing:
                object.__setattr__(self, name, getattr(own, name))
        self._check_task()
        self._check_run()
        check_int("num", self.num, 1)
        check_bool("deterministic", self.deterministic)
        check_number("temperature", self.temperature, 0.0, low_open=True)
        check_number("velocity_anchor", self.velocity_anchor, 0.0)
        check_bool("wav", self.wav)
        check_number("bpm", self.bpm, MIN_BPM, MAX_BPM, optional=True)


class GenerateResult(NamedTuple):
    """Files written by :func:`generate` and the episodes they came from."""

    files: list[Path]
    rollouts: Rollouts


def _existing_takes(out: Path) -> list[Path]:
    """The files of earlier takes in ``out``: ``take*.{mid,npz,png}`` and ``summary.json``."""
    if not out.is_dir():
        return []
    takes = [p for p in out.glob("take*")  # links too: force removes them, never their targets
             if (p.is_file() or p.is_symlink()) and p.suffix in (*_TAKE_SUFFIXES, ".wav")]
    summary = out / "summary.json"
    return sorted(takes) + ([summary] if summary.is_file() or summary.is_symlink() else [])


def generate(config: GenerateConfig) -> GenerateResult:
    """Compose ``config.num`` sequences, each continuing a primer drawn from the env's data.

    Writes ``take{i}.mid``, ``take{i}.npz`` (key ``sequence``; also ``reference`` and
    ``prompt_steps``) and ``take{i}.png`` (the piano roll: primer shaded apart from what the
    policy wrote, velocity as shade, titled with its bars and tempo, the real continuation
    below), and ``summary.json`` with each take's return and song term. With ``force`` the
    earlier takes in ``out`` are deleted first (other files are left alone).

    Args:
        config: the policy, the task (:meth:`~agents.task.TaskConfig.env_kwargs`), the takes.

    Returns:
        GenerateResult.

    Raises:
        FileNotFoundError: the policy file is missing.
        ValueError: the file is not a policy, or the task does not fit it (the message names the
            field).
        agents.training.runs.RunDirError: ``out`` is a file, or holds takes and ``force`` is not
            set, or another process is writing to it.
    """
    with RunLock(config.out):  # out/ is this run's until it ends
        return _generate(config)


def _generate(config: GenerateConfig) -> GenerateResult:
    from agents.policies.policy import policy_velocity_bins
    from dataset.io import atomic_write
    from dataset.midi import sequence_to_midi
    from drum_env.render import save_piano_roll_png

    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"out {str(out)!r} is a file, not a folder")
    previous = _existing_takes(out)
    if previous and not config.force:
        raise RunDirError(
            f"out {str(out)!r} already holds takes ({len(previous)} file(s), e.g. "
            f"{previous[0].name}); pass --force to replace them, or choose another --out"
        )
    policy = load_any_policy(config.policy)
    check_policy_fits(policy.config, config, config.policy)
    # a policy with velocity levels plays at its own bins (None for a binary policy)
    env_kwargs = config.env_kwargs(velocity_bins=policy_velocity_bins(policy))
    rollouts = rollout_episodes(
        policy_fn(policy, config.deterministic, config.seed, config.temperature,
                  velocity_anchor=config.velocity_anchor), env_kwargs,
        episodes=config.num, num_envs=config.num, seed=config.seed,
    )  # fmt: skip
    for path in previous:
        path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    summary = []
    spb = config.steps_per_bar
    for i, (seq, ref) in enumerate(zip(rollouts.takes, rollouts.references)):
        stem = out / f"take{i}"
        bpm = config.bpm or (rollouts.tempos[i] if rollouts.tempos else None) or 120.0
        sequence_to_midi(seq, stem.with_suffix(".mid"), bpm=bpm, steps_per_bar=spb)
        if config.wav:
            from drum_env.audio import save_wav

            files.append(save_wav(seq, stem.with_suffix(".wav"), bpm=bpm, steps_per_bar=spb))
        atomic_write(
            stem.with_suffix(".npz"),
            lambda f, s=seq, r=ref: np.savez_compressed(
                f, sequence=s, reference=r, prompt_steps=rollouts.prompt_steps
            ),
        )
        real = ref if rollouts.reference_values is None else rollouts.reference_values[i]
        save_piano_roll_png(
            seq, stem.with_suffix(".png"), steps_per_bar=spb, prompt_steps=rollouts.prompt_steps,
            title=f"take {i}", bpm=bpm, reference=real,
        )  # fmt: skip
        files += [stem.with_suffix(s) for s in _TAKE_SUFFIXES]
        summary.append({"take": i, "return": float(rollouts.returns[i]),
                        "song_raw": float(rollouts.song_raw[i]), "bpm": float(bpm)})  # fmt: skip
    write_json(out / "summary.json", summary)  # atomically, never through a link
    return GenerateResult(files, rollouts)
