"""What a run logs for people: its scalars, takes to hear and see, its HParams, and W&B.

CleanRL logs videos of its agent (``--capture-video``), its hyperparameters and, with
``--track``, syncs it all to Weights & Biases. The same here, for drum takes:

* :func:`play_takes`, :func:`log_takes`: a few fixed primers (the env reset with
  :data:`CAPTURE_SEED`, so the same ones at every capture), each continued by the policy, logged
  as audio (``add_audio``, the take's WAV at :data:`drum_env.audio.SAMPLE_RATE`) and as a piano
  roll (``add_figure``, :func:`drum_env.render.piano_roll_figure`) with the real continuation
  beside it: tags ``takes/<i>/agent`` and ``takes/<i>/real`` (audio), ``takes/<i>`` (the
  figure: the take above, the real continuation below).
  Playing draws from the policy's own generator and the env's, never from a global one, so a
  capture changes nothing a seeded run computes.
* :func:`hparams_of`, :func:`log_hparams`: the run's config flattened to the types TensorBoard's
  HParams plugin takes, with the run's final numbers as its metrics (``hparam/...``).
* :func:`start_tracking`, :func:`finish_tracking`: ``wandb.init(..., sync_tensorboard=True)``
  for a run with ``track`` (before its ``SummaryWriter`` is made, as W&B requires).
* :class:`RunLogs`: the PPO trainer's logs (:func:`agents.training.ppo.train`): TensorBoard,
  the progress bar, the captures and the HParams at the end, W&B.

The metric of a ``drum-env train`` run's HParams is the mean raw return
(``hparam/episodic_return_raw``: the shaping's weights on the raw terms, of the episodes of the
last tenth of the run, on the training data) and the raw song term of the same episodes: a
plain run has no held-out evaluation, so these are training numbers; the benchmark's runs log
their held-out headline instead (:mod:`agents.evaluation.benchmark`).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drum_env.rewards import TERMS, VELOCITY_TERMS

if TYPE_CHECKING:
    from agents.evaluation.rollout import PolicyFn, Rollouts
    from agents.training.distributed import Dist
    from agents.training.ppo import PPOConfig

__all__ = [
    "CAPTURE_TAKES",
    "CAPTURE_SEED",
    "play_takes",
    "log_takes",
    "hparams_of",
    "log_hparams",
    "recent_mean",
    "start_tracking",
    "finish_tracking",
    "RunLogs",
]

CAPTURE_TAKES = 3
"""Takes per capture."""
CAPTURE_SEED = 0
"""The reset seed of the captures' env: every capture (and every run) continues the same
primers of its data, so takes compare across checkpoints and runs."""


# ----------------------------------------------------------------------------- takes


def play_takes(policy: PolicyFn, env_kwargs: Mapping[str, Any], num: int = CAPTURE_TAKES,
               seed: int = CAPTURE_SEED) -> Rollouts:  # fmt: skip
    """``num`` episodes of ``policy`` on fixed primers (the env reset with ``seed``).

    The global torch generator is restored afterwards (an SB3 model samples from it).
    """
    import torch

    from agents.evaluation.rollout import rollout_episodes

    with torch.random.fork_rng(devices=[]):
        return rollout_episodes(policy, env_kwargs, episodes=num, num_envs=num, seed=seed)


def _audio(sequence: np.ndarray, bpm: float, steps_per_bar: int, synth: str) -> np.ndarray:
    """float32 (samples,) in [-1, 1]: ``sequence`` played by :func:`drum_env.audio.render_audio`."""
    from drum_env.audio import render_audio

    audio = render_audio(sequence, bpm=bpm, steps_per_bar=steps_per_bar, synth=synth)
    return audio.astype(np.float32) / 32768.0


def log_takes(writer: Any, rollouts: Rollouts, step: int, steps_per_bar: int,
              real: bool = True, synth: str = "auto") -> dict[str, np.ndarray]:  # fmt: skip
    """Log each take of ``rollouts`` as audio and piano roll, with the real continuation.

    Tags: ``takes/<i>/agent`` and (with ``real``) ``takes/<i>/real`` audio, ``takes/<i>`` the
    figure of both. A take plays at its reference's tempo (120 bpm where the file has none).

    Args:
        writer: a ``SummaryWriter``.
        rollouts: :func:`play_takes`'s episodes (their ``takes`` and ``reference_values``).
        step: the x of the entries (env steps).
        steps_per_bar: steps per bar of the task.
        real: also log the real continuations' audio (it never changes: once per writer is
            enough).
        synth: :func:`drum_env.audio.render_audio`'s synthesiser: ``"auto"`` is FluidSynth
            where installed (about 0.4 s a clip: it loads its soundfont each time), else the
            kit; ``"kit"`` the numpy kit (milliseconds).

    Returns:
        the audio clips logged, by tag: float32 (samples,) in [-1, 1] at
        :data:`drum_env.audio.SAMPLE_RATE`.
    """
    from drum_env.audio import SAMPLE_RATE
    from drum_env.render import piano_roll_figure

    p = rollouts.prompt_steps
    clips: dict[str, np.ndarray] = {}
    for i, take in enumerate(rollouts.takes):
        reference = rollouts.reference_values[i]
        tempo = rollouts.tempos[i] if i < len(rollouts.tempos) else None
        bpm = float(tempo) if tempo else 120.0
        clips[f"takes/{i}/agent"] = _audio(take, bpm, steps_per_bar, synth)
        if real:
            clips[f"takes/{i}/real"] = _audio(reference, bpm, steps_per_bar, synth)
        figure = piano_roll_figure(take, steps_per_bar, p, title=f"take {i} at {step:,} env steps",
                                   bpm=bpm, reference=reference)  # fmt: skip
        writer.add_figure(f"takes/{i}", figure, step, close=False)
    for tag, clip in clips.items():
        writer.add_audio(tag, clip, step, sample_rate=SAMPLE_RATE)
    return clips


# ----------------------------------------------------------------------------- HParams


def hparams_of(config: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """A config as HParams values: mappings flattened (``weights.step``), None as ``"none"``.

    Lists become their JSON text; bools, ints, floats and strings stay as they are.

    >>> hparams_of({"seed": 1, "weights": {"song": 2.0}, "data": None, "sections": [[0, 16]]})
    {'seed': 1, 'weights.song': 2.0, 'data': 'none', 'sections': '[[0, 16]]'}
    """
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(hparams_of({f"{key}.{k}": v for k, v in value.items()}))
        elif value is None:
            out[key] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=str)
    return out


def log_hparams(writer: Any, config: Mapping[str, Any], metrics: Mapping[str, float],
                step: int) -> None:  # fmt: skip
    """The run's HParams entry (its flattened config) and its metrics as scalars at ``step``.

    Written into the writer's own event file (``add_hparams`` would open a second run folder),
    so TensorBoard's HParams tab shows this run with the scalars of ``metrics`` (non-finite
    values are declared, not written).
    """
    from torch.utils.tensorboard.summary import hparams

    for summary in hparams(hparams_of(config), dict(metrics)):
        writer.file_writer.add_summary(summary, step)
    for key, value in metrics.items():
        if math.isfinite(value):
            writer.add_scalar(key, value, step)


def recent_mean(history: Sequence[Mapping[str, float]], key: str) -> float:
    """Episode-weighted mean of ``key`` over the last tenth of ``history``.

    The last tenth is at least one row, and goes back until some episode finished; NaN if none
    did.
    """
    if not history:
        return float("nan")
    window = max(1, len(history) // 10)
    total = count = 0.0
    for i, row in enumerate(reversed(history)):
        n = row.get("charts/episodes", 0.0)
        if n > 0:
            total += n * row[key]
            count += n
        if i + 1 >= window and count > 0:
            break
    return total / count if count else float("nan")


# ----------------------------------------------------------------------------- W&B


def start_tracking(config: Any) -> Any:
    """``wandb.init`` for a config with ``track`` (a :class:`~agents.task.TrackConfig`); else None.

    Call before the run's ``SummaryWriter`` exists: ``sync_tensorboard`` patches TensorBoard's
    writer so its scalars, images and HParams reach W&B (not its audio: :class:`RunLogs` logs
    the takes' audio to W&B itself, as ``wandb.Audio``). The W&B run is named after the run
    folder and holds the config; ``WANDB_MODE=offline`` keeps it on this machine.

    Raises:
        ModuleNotFoundError: wandb is not installed (the message names ``drum-env[track]``).
    """
    if not getattr(config, "track", False):
        return None
    try:
        import wandb
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "track=True needs Weights & Biases (wandb), which is not installed: pip install "
            "'drum-env[track]'", name="wandb",
        ) from exc
    return wandb.init(
        project=config.wandb_project_name, entity=config.wandb_entity, name=config.run_name,
        config=config.to_dict(), sync_tensorboard=True, dir=os.environ.get("WANDB_DIR"),
    )  # fmt: skip


def _track_audio(run: Any, clips: Mapping[str, np.ndarray], step: int) -> None:
    """Log ``clips`` (tag -> float32 samples in [-1, 1]) to the W&B ``run`` as ``wandb.Audio``.

    Each clip is written as a 16-bit WAV file first (``wandb.Audio`` of raw samples needs the
    ``soundfile`` package; of a file, nothing more), which W&B copies into the run's media.
    """
    import tempfile
    import wave

    import wandb

    from drum_env.audio import SAMPLE_RATE

    with tempfile.TemporaryDirectory() as folder:
        logged: dict[str, Any] = {"global_step": step}
        for tag, clip in clips.items():
            path = Path(folder) / f"{tag.replace('/', '_')}_{step}.wav"
            with wave.open(str(path), "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(SAMPLE_RATE)
                f.writeframes((np.clip(clip, -1.0, 1.0) * 32767).astype("<i2").tobytes())
            logged[tag] = wandb.Audio(str(path), caption=f"{tag} at {step:,} env steps")
        run.log(logged)


def finish_tracking(run: Any) -> None:
    """End a W&B run of :func:`start_tracking` (None: nothing to end)."""
    if run is not None:
        run.finish()


# ----------------------------------------------------------------------------- PPO's logs


class RunLogs:
    """The PPO trainer's logs: TensorBoard, the progress bar, takes, HParams and W&B.

    Rank 0 writes (``d.main``); the other ranks only step a disabled bar. Every iteration
    :meth:`log` writes the finite metrics (the ``reward/<term>`` of terms that are on: non-zero
    weight, and a velocity term only with velocity levels; ``losses/kl_pretrained`` only with a
    ``pretrained`` policy), moves the bar, captures takes every
    ``capture_every`` iterations and at the last, and at the last iteration writes the HParams.

    Args:
        config: the run.
        d: the process's place in the DDP group.
        global_step: env steps already done (a resumed run's).
        num_iterations: the run's iterations.
    """

    def __init__(self, config: PPOConfig, d: Dist, global_step: int, num_iterations: int
                 ) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        self.config, self.num_iterations = config, num_iterations
        self.step_size = config.batch_size * d.world_size
        self.main = d.main
        self.tracking = start_tracking(config) if d.main else None
        self.writer = None
        if d.main and config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(config.out) / "tb"),
                                        purge_step=global_step if config.resume else None)
            # the run's config as text too, as CleanRL logs its hyperparameters
            rows = "\n".join(f"|{k}|{v}|" for k, v in config.to_dict().items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}", global_step)
        self.bar = tqdm(total=num_iterations * self.step_size, initial=global_step, unit="step",
                        desc="ppo", disable=not (config.progress and d.main),
                        dynamic_ncols=True)  # fmt: skip
        weights = config.shaping_object.weights
        self.off = {f"reward/{t}" for t in TERMS
                    if weights[t] == 0.0 or (t in VELOCITY_TERMS and not config.velocity_levels)}
        if config.pretrained is None:  # no reference policy: its KL is 0 throughout
            self.off.add("losses/kl_pretrained")
        every = config.capture_every
        self.capture_every = config.checkpoint_every if every is None else every
        self.real_logged = False

    def log(self, history: Sequence[Mapping[str, float]], global_step: int, policy: Any) -> None:
        """Log ``history[-1]``: scalars, the bar, takes when due, the HParams at the end."""
        metrics = history[-1]
        iteration = int(metrics["iteration"])
        if self.writer is not None:
            for key, value in metrics.items():
                if key not in ("iteration", "global_step") and key not in self.off \
                        and math.isfinite(value):
                    self.writer.add_scalar(key, value, global_step)
            due = self.capture_every and (iteration % self.capture_every == 0
                                          or iteration == self.num_iterations)
            if due:
                self.capture(policy, global_step)
            if iteration == self.num_iterations:
                self.hparams(history, global_step)
        self.bar.update(self.step_size)
        if self.main and metrics.get("charts/episodes", 0.0) > 0:
            self.bar.set_postfix(ret=f"{metrics['charts/episodic_return']:.2f}",
                                 song=f"{metrics['charts/episode_song_raw']:.3f}")  # fmt: skip

    def capture(self, policy: Any, global_step: int) -> None:
        """Play and log :data:`CAPTURE_TAKES` takes of ``policy`` (a copy, on the CPU)."""
        from agents.evaluation.rollout import policy_fn
        from agents.policies.policy import policy_velocity_bins

        player = copy.deepcopy(policy).cpu()  # the trained policy's mode and device untouched
        kwargs = self.config.env_kwargs(velocity_bins=policy_velocity_bins(player))
        rollouts = play_takes(policy_fn(player, seed=self.config.seed), kwargs)
        clips = log_takes(self.writer, rollouts, global_step, self.config.steps_per_bar,
                          real=not self.real_logged)  # fmt: skip
        self.real_logged = True
        if self.tracking is not None:  # W&B's TensorBoard sync skips audio: log it directly
            _track_audio(self.tracking, clips, global_step)

    def hparams(self, history: Sequence[Mapping[str, float]], global_step: int) -> None:
        """The run's HParams: its config, the mean raw return and song term of its last tenth."""
        metrics = {"hparam/episodic_return_raw": recent_mean(history, "charts/episodic_return_raw"),
                   "hparam/episode_song_raw": recent_mean(history, "charts/episode_song_raw")}
        log_hparams(self.writer, self.config.to_dict(), metrics, global_step)

    def close(self) -> None:
        """Close the bar and the writer; end the W&B run."""
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        finish_tracking(self.tracking)
