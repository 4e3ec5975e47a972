"""Stable-Baselines3 baselines (PPO, A2C) on DrumCompose-v0, with the shared evaluation.

SB3 trains on its own ``DummyVecEnv`` of ``gymnasium.make("DrumCompose-v0", ...)`` envs (SB3
does not take Gymnasium vector envs); the reward, shaping and evaluation are the same as the
custom agent's: :class:`DrumEvalCallback` plays whole episodes with
:func:`agents.evaluation.rollout.rollout_episodes` and logs the same scalars to TensorBoard.

With ``velocity_levels = K > 0`` the env's actions are ``MultiDiscrete([K + 1] * num_drums)``,
which SB3's ``MultiInputPolicy`` handles natively (a categorical per drum); the run writes the
training envs' velocity bins as ``velocity_bins.json`` beside ``model.zip``
(:data:`agents.baselines.sb3_load.VELOCITY_BINS_FILE`), and evaluates on envs with the same bins.

Not SB3's defaults: :func:`build_model` sets, with ``MultiInputPolicy`` (the observation is a
``Dict``),

| setting | here | SB3's default, and why this differs |
|---|---|---|
| ``n_envs`` | 8 (``num_envs``) | 1 |
| ``n_steps`` | 64 | PPO 2048, A2C 5: a 20,000-step run (the default budget) makes about 40 PPO updates of 512 steps, not one of 16,384 |
| ``batch_size`` (PPO) | 256 (at most ``n_steps * n_envs``) | 64: minibatches of 256 of the 512-step rollout |
| ``ent_coef`` | 0.01 | 0.0: the custom PPO's (and CleanRL's) entropy bonus, so that both agents are set alike |
| ``learning_rate`` | 3e-4 | PPO 3e-4 (the same); A2C 7e-4: one rate for both algorithms |

Everything else is SB3's default (PPO: 10 epochs, ``gamma`` 0.99, ``gae_lambda`` 0.95, clip
0.2; A2C: RMSprop, ``gae_lambda`` 1.0); ``extra`` passes any other SB3 argument. These settings
were not tuned for this env; the RL Zoo files ``hyperparams/ppo.yml`` and ``hyperparams/a2c.yml``
hold the same ones.

Beside ``model.zip`` the run also writes ``sb3_policy.json``
(:data:`agents.baselines.sb3_load.SIDECAR_FILE`): the settings that rebuild its policy from plain
data, so that ``drum-env generate`` and :func:`agents.evaluation.rollout.load_any_policy` never
unpickle the zip (see :mod:`agents.baselines.sb3_load`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from agents.baselines.sb3_load import VELOCITY_BINS_FILE, sb3_settings, write_sidecar
from agents.evaluation.rollout import rollout_episodes, sb3_policy_fn
from agents.task import RunConfig, TaskConfig, check_bool, check_choice, check_int, check_number
from agents.task import TrackConfig as TrackConfig  # the experiment's name and W&B
from agents.training.runs import RunLock, prepare_run_dir, write_json
from dataset.io import atomic_write

__all__ = [
    "ALGOS", "BaselineConfig", "BaselineResult", "DrumEvalCallback", "build_model",
    "save_model", "train_baseline",
]  # fmt: skip

ALGOS = ("ppo", "a2c")
"""SB3 algorithms with ``MultiBinary`` (and ``MultiDiscrete``) actions: PPO and A2C."""


@dataclass(frozen=True)
class BaselineConfig(TrackConfig, RunConfig, TaskConfig):
    """A Stable-Baselines3 run on DrumCompose-v0. Frozen, validated.

    The task settings come from :class:`~agents.task.TaskConfig`, the run settings from
    :class:`~agents.task.RunConfig`, the experiment's name and W&B tracking from
    :class:`~agents.task.TrackConfig`: ``out`` (by default a new
    ``runs/DrumCompose-v0__sb3_{algo}__{seed}__{unix_time}``) holds ``config.json``,
    ``model.zip`` and ``tb/``;
    ``seed`` seeds SB3 (``set_random_seed``) and the env resets; ``progress`` shows SB3's
    progress bar; SB3 trains on the CPU with torch's own threads, so ``device``, ``threads``,
    ``amp`` and ``resume`` are not used.
    """

    UNUSED_RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("device", "threads", "amp", "resume")

    algo: str = "ppo"
    """``ppo`` or ``a2c`` (SB3 supports MultiBinary actions with these two only)."""
    num_envs: int = 8
    """Envs in SB3's DummyVecEnv."""
    num_steps: int = 64
    """Rollout length per env and update (SB3's ``n_steps``; PPO: ``num_steps * num_envs`` per
    batch)."""
    total_timesteps: int = 20_000
    """Env steps to train for, over all envs."""
    learning_rate: float = 3e-4
    """Adam (PPO) / RMSprop (A2C) learning rate."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient, >= 0 (SB3's default is 0.0; 0.01 is the custom PPO's)."""
    eval_every: int = 5_000
    """Env steps between evaluations; 0 disables the callback."""
    eval_episodes: int = 8
    """Episodes per evaluation."""
    tensorboard: bool = True
    """Write TensorBoard logs under ``out/tb``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further keyword arguments of the SB3 algorithm, as JSON (``'{"gae_lambda": 0.9}'``)."""

    def default_exp_name(self) -> str:
        """``sb3_ppo`` or ``sb3_a2c``."""
        return f"sb3_{self.algo}"

    def __post_init__(self) -> None:
        self._check_task()
        self._check_track()
        self._check_run()
        check_choice("algo", self.algo, ALGOS)
        for name in ("num_envs", "total_timesteps", "num_steps", "eval_episodes"):
            check_int(name, getattr(self, name), 1)
        check_int("eval_every", self.eval_every, 0)
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("ent_coef", self.ent_coef, 0.0)
        check_bool("tensorboard", self.tensorboard)
        if self.track and not self.tensorboard:
            raise ValueError(
                "track=True syncs the TensorBoard logs to W&B: it needs tensorboard=True "
                "(drop --no-tensorboard)"
            )
        extra = self.extra
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError as exc:
                raise ValueError(f"extra must be a JSON object: {exc}") from exc
        if not isinstance(extra, Mapping):
            raise ValueError(f"extra must be a mapping of SB3 keyword arguments, got {extra!r}")
        object.__setattr__(self, "extra", dict(extra))


def build_model(config: BaselineConfig, data: Any = None) -> tuple[Any, Any]:
    """The SB3 model and its ``DummyVecEnv`` for ``config`` (seeded, not trained).

    Args:
        config: the run.
        data: replaces ``config.data`` for the training envs (e.g. a split's folder).

    Returns:
        ``(model, venv)``; close ``venv`` when done.
    """
    import gymnasium as gym
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    set_random_seed(config.seed)
    kwargs = config.env_kwargs(data)
    # Monitor records each episode's return and length: SB3 logs rollout/ep_rew_mean from it
    venv = DummyVecEnv([lambda: Monitor(gym.make("DrumCompose-v0", **kwargs))] * config.num_envs)
    venv.seed(config.seed)
    extra = dict(config.extra)
    if config.algo == "ppo":
        extra.setdefault("batch_size", min(256, config.num_steps * config.num_envs))
    algo = PPO if config.algo == "ppo" else A2C
    model = algo(
        "MultiInputPolicy", venv, learning_rate=config.learning_rate, n_steps=config.num_steps,
        ent_coef=config.ent_coef, seed=config.seed, device="cpu", verbose=0, **extra,
    )  # fmt: skip
    if config.tensorboard:  # out/tb itself, as every drum-env command (SB3 would add PPO_1/)
        model.set_logger(configure(str(Path(config.out) / "tb"), ["tensorboard"]))
    return model, venv


class BaselineResult(NamedTuple):
    """What :func:`train_baseline` returns."""

    model_path: Path
    global_step: int
    mean_episode_return: float
    mean_song_raw: float
    evaluations: list[dict[str, float]]


def _make_callback_base():
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class DrumEvalCallback(_make_callback_base()):  # type: ignore[misc]
    """Every ``eval_every`` env steps, play ``episodes`` episodes and log return and song term.

    Logs ``eval/episode_return`` and ``eval/song_raw`` (TensorBoard, via SB3's logger) and keeps
    them in :attr:`evaluations`.

    Args:
        env_kwargs: DrumCompose-v0 keyword arguments of the evaluation episodes.
        eval_every: env steps between evaluations.
        episodes: episodes per evaluation.
        seed: reset seed of the evaluation envs (the same episodes every time).
    """

    def __init__(self, env_kwargs: dict[str, Any], eval_every: int, episodes: int, seed: int):
        super().__init__()
        self.env_kwargs, self.eval_every, self.episodes, self.seed = (
            env_kwargs, eval_every, episodes, seed,
        )  # fmt: skip
        self.evaluations: list[dict[str, float]] = []
        self._next = eval_every

    def evaluate(self) -> dict[str, float]:
        """Play the evaluation episodes now and log them."""
        rollouts = rollout_episodes(
            sb3_policy_fn(self.model), self.env_kwargs, self.episodes, seed=self.seed
        )
        row = {
            "step": float(self.num_timesteps),
            "episode_return": float(rollouts.returns.mean()),
            "song_raw": float(rollouts.song_raw.mean()),
        }
        self.evaluations.append(row)
        self.logger.record("eval/episode_return", row["episode_return"])
        self.logger.record("eval/song_raw", row["song_raw"])
        # written now: A2C dumps its logs only every 100 updates by default
        self.logger.dump(self.num_timesteps)
        return row

    def _on_step(self) -> bool:
        if self.eval_every and self.num_timesteps >= self._next:
            self._next += self.eval_every
            self.evaluate()
        return True


def save_model(model: Any, config: BaselineConfig, velocity_bins: Any = None) -> Path:
    """Save ``model`` as ``config.out/model.zip`` with its sidecar, so it loads as data.

    The sidecar (:data:`~agents.baselines.sb3_load.SIDECAR_FILE`) holds the settings that
    rebuild its policy (:mod:`agents.baselines.sb3_load`: the zip is never unpickled).

    Args:
        model: the SB3 ``PPO`` or ``A2C`` model.
        config: the run (its ``out``, ``algo`` and metre).
        velocity_bins: the training envs' bins, also written as ``velocity_bins.json`` (``None``:
            no velocity levels, or written already).

    Returns:
        the path of ``model.zip``.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if velocity_bins is not None:
        write_json(out / VELOCITY_BINS_FILE, velocity_bins.to_dict())
    model_path = out / "model.zip"
    settings = sb3_settings(model, config.algo, steps_per_bar=config.steps_per_bar,
                            bars_per_phrase=config.bars_per_phrase)  # fmt: skip
    atomic_write(model_path, model.save, durable=False)  # SB3's open() would follow a link
    write_sidecar(model_path, settings)
    return model_path


def train_baseline(config: BaselineConfig) -> BaselineResult:
    """Train SB3 PPO or A2C on DrumCompose-v0 and evaluate it with the shared rollout loop.

    Args:
        config: the run.

    Returns:
        BaselineResult; the model is saved as ``out/model.zip``.

    Raises:
        agents.training.runs.RunDirError: ``out`` holds another run (and ``force`` is not set), or
            another process is running in it.
    """
    with RunLock(config.out):  # out/ is this run's until it ends
        return _train_baseline(config)


def _train_baseline(config: BaselineConfig) -> BaselineResult:
    from agents.training.run_logs import finish_tracking, start_tracking

    out = prepare_run_dir(config.out, config.to_dict(), force=config.force)
    tracking = start_tracking(config)  # before SB3's TensorBoard writer: W&B syncs it
    try:
        return _learn(config, out)
    finally:
        finish_tracking(tracking)


def _learn(config: BaselineConfig, out: Path) -> BaselineResult:
    model, venv = build_model(config)
    bins = venv.envs[0].unwrapped.config.velocity_bins  # None without velocity levels
    if bins is not None:  # evaluate, and let the model be played, with its training bins
        write_json(out / VELOCITY_BINS_FILE, bins.to_dict())
    callback = DrumEvalCallback(config.env_kwargs(velocity_bins=bins), config.eval_every,
                                config.eval_episodes, config.seed)  # fmt: skip
    # A2C updates every num_steps * num_envs steps: log every 10 of them (SB3's default: 100)
    with warnings.catch_warnings():  # SB3's bar is tqdm.rich, which warns that it is "alpha"
        warnings.filterwarnings("ignore", message="rich is experimental/alpha")
        model.learn(config.total_timesteps, callback=callback, progress_bar=config.progress,
                    log_interval=1 if config.algo == "ppo" else 10)  # fmt: skip
    evals = callback.evaluations
    final = evals[-1] if evals and evals[-1]["step"] == model.num_timesteps else None
    final = final or callback.evaluate()
    model_path = save_model(model, config)
    venv.close()
    return BaselineResult(
        model_path, int(model.num_timesteps), final["episode_return"], final["song_raw"],
        callback.evaluations,
    )  # fmt: skip
