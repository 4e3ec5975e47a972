"""Stable-Baselines3 baselines (PPO, A2C) on DrumCompose-v0, with the shared evaluation.

SB3 trains on its own ``DummyVecEnv`` of ``gymnasium.make("DrumCompose-v0", ...)`` envs (SB3
does not take Gymnasium vector envs); the reward, shaping and evaluation are the same as the
custom agent's: :class:`DrumEvalCallback` plays whole episodes with
:func:`agents.rollout.rollout_episodes` and logs the same scalars to TensorBoard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.rollout import rollout_episodes

__all__ = ["BaselineConfig", "BaselineResult", "DrumEvalCallback", "train_baseline"]

ALGOS = ("ppo", "a2c")


@dataclass(frozen=True)
class BaselineConfig:
    """A Stable-Baselines3 run on DrumCompose-v0."""

    algo: str = "ppo"
    """``"ppo"`` or ``"a2c"`` (SB3 supports MultiBinary actions with these two only)."""
    data: str | None = None
    """npz folder of reference drums; ``None``: the built-in corpus."""
    seq_len: int = 64
    """Steps per episode window (primer included)."""
    prompt_bars: int = 1
    """Bars of primer."""
    shaping: str = "hierarchical"
    """Reward shaping name (``drum_env.SHAPINGS``)."""
    num_envs: int = 8
    """Envs in SB3's DummyVecEnv."""
    total_timesteps: int = 20_000
    """Env steps to train for, over all envs."""
    n_steps: int = 64
    """Rollout length per env and update (PPO: ``n_steps * num_envs`` per batch)."""
    learning_rate: float = 3e-4
    """Adam (PPO) / RMSprop (A2C) learning rate."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    seed: int = 0
    """Seeds SB3 (``set_random_seed``) and the env resets."""
    eval_every: int = 5_000
    """Env steps between evaluations; 0 disables the callback."""
    eval_episodes: int = 8
    """Episodes per evaluation."""
    out: str = "runs/sb3"
    """Folder for the model, TensorBoard logs and evaluations."""
    tensorboard: bool = True
    """Write TensorBoard logs under ``out/tb``."""
    progress: bool = False
    """Show SB3's progress bar."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further keyword arguments for the SB3 algorithm."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        for name in ("num_envs", "total_timesteps", "n_steps", "eval_episodes", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of DrumCompose-v0."""
        return {"data": self.data, "seq_len": self.seq_len, "prompt_bars": self.prompt_bars,
                "shaping": self.shaping}  # fmt: skip


class BaselineResult(NamedTuple):
    """What :func:`train_baseline` returns."""

    model_path: Path
    global_step: int
    mean_episode_return: float
    mean_song_raw: float
    evaluations: list[dict[str, float]]


def _sb3_policy_fn(model: Any, deterministic: bool = False):
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        actions, _ = model.predict(obs, deterministic=deterministic)
        return np.asarray(actions, dtype=np.int8)

    return act


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
            _sb3_policy_fn(self.model), self.env_kwargs, self.episodes, seed=self.seed
        )
        row = {
            "step": float(self.num_timesteps),
            "episode_return": float(rollouts.returns.mean()),
            "song_raw": float(rollouts.song_raw.mean()),
        }
        self.evaluations.append(row)
        self.logger.record("eval/episode_return", row["episode_return"])
        self.logger.record("eval/song_raw", row["song_raw"])
        return row

    def _on_step(self) -> bool:
        if self.eval_every and self.num_timesteps >= self._next:
            self._next += self.eval_every
            self.evaluate()
        return True


def train_baseline(config: BaselineConfig) -> BaselineResult:
    """Train SB3 PPO or A2C on DrumCompose-v0 and evaluate it with the shared rollout loop.

    Args:
        config: the run.

    Returns:
        BaselineResult; the model is saved as ``out/model.zip``.
    """
    import gymnasium as gym
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    import drum_env  # noqa: F401

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(config.seed)
    kwargs = config.env_kwargs
    venv = DummyVecEnv([lambda: gym.make("DrumCompose-v0", **kwargs)] * config.num_envs)
    venv.seed(config.seed)
    algo = PPO if config.algo == "ppo" else A2C
    extra = dict(config.extra)
    if config.algo == "ppo":
        extra.setdefault("batch_size", min(256, config.n_steps * config.num_envs))
    model = algo(
        "MultiInputPolicy", venv, learning_rate=config.learning_rate, n_steps=config.n_steps,
        ent_coef=config.ent_coef, seed=config.seed, device="cpu", verbose=0,
        tensorboard_log=str(out / "tb") if config.tensorboard else None, **extra,
    )  # fmt: skip
    callback = DrumEvalCallback(kwargs, config.eval_every, config.eval_episodes, config.seed)
    model.learn(config.total_timesteps, callback=callback, progress_bar=config.progress)
    evals = callback.evaluations
    final = evals[-1] if evals and evals[-1]["step"] == model.num_timesteps else None
    final = final or callback.evaluate()
    model_path = out / "model.zip"
    model.save(model_path)
    (out / "config.json").write_text(_json(asdict(config)))
    venv.close()
    return BaselineResult(
        model_path, int(model.num_timesteps), final["episode_return"], final["song_raw"],
        callback.evaluations,
    )  # fmt: skip


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True)
