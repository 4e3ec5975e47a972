"""Preference fine-tuning: online DPO on pairs of the policy's own takes, ranked by a return.

A second fine-tuner beside PPO (:mod:`agents.training.ppo`), for a pretrained policy. Each round
the policy plays ``takes`` takes of each of ``primers`` training primers: the vector env's
sub-envs come in groups of ``takes`` reset with one seed, so a group shares its primer and its
reference, and only the policy's draws differ. The takes of a primer are ranked by their
episode return under ``shaping`` (default ``aligned-raw``: the aligned terms, unnormalised, so
returns compare across primers and rounds), and the best and the worst form a pair (a primer
whose takes all earn the same is skipped). The policy then takes Adam steps on the DPO loss
(Rafailov et al., 2023, "Direct Preference Optimization")::

    -log sigmoid(beta * ((log pi(w) - log pi_ref(w)) - (log pi(l) - log pi_ref(l))))

against the frozen start ``pi_ref``, where ``log pi(take)`` is the sum of the log-probabilities
of the take's actions (:func:`take_log_probs`, the trainer's own ``evaluate_actions``, so it is
the probability the policy sampled the take with). Playing the current policy every round makes
it online DPO, as in Guo et al. (2024), "Direct Language Model Alignment from Online AI
Feedback". No critic, no reward normaliser, no advantage: the return only orders takes of one
primer, so its scale does not matter.

It is written here rather than taken from a library: TRL's ``DPOTrainer`` trains language
models on token sequences from a dataset of fixed pairs; here the pairs are played in a
Gymnasium vector env every round and the log-probabilities come from a drum policy's own
distribution (Bernoulli hits or velocity classes per drum).

Measured in ``benchmarks/preference_finetune.py`` (README, "Preference fine-tuning").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "PreferenceConfig",
    "Takes",
    "dpo_loss",
    "finetune",
    "play_takes",
    "preference_pairs",
    "take_log_probs",
]


@dataclass(frozen=True)
class PreferenceConfig:
    """One preference fine-tuning run. Frozen; validated on construction."""

    rounds: int = 16
    """Rounds of play-then-update."""
    primers: int = 128
    """Training primers played per round (one pair each at most)."""
    takes: int = 4
    """Takes per primer, >= 2; the best and the worst form the pair."""
    beta: float = 0.1
    """DPO's ``beta`` (> 0): how far from the start the loss lets the policy move."""
    learning_rate: float = 3e-5
    """Adam learning rate."""
    epochs: int = 2
    """Passes over a round's pairs."""
    pairs_per_batch: int = 16
    """Pairs per Adam step."""
    max_grad_norm: float = 1.0
    """Max-norm gradient clipping (> 0)."""
    energy_coef: float = 0.0
    """Weight of the energy witness in the ranking, >= 0 (0: the return alone). With ``c > 0``
    a take is ranked by its return plus ``c`` times its witness
    (:class:`~agents.training.discriminator.EnergyWitness`: ``mean |x - x'| - mean |x - y|`` over
    the round's takes ``x'`` and the training primers' real continuations ``y``, on the
    headline's features), which rewards takes as varied as real drumming as much as takes
    close to it; the return alone ranks by closeness to each take's one reference."""
    shaping: str = "aligned-raw"
    """The shaping whose episode return ranks the takes (a key of ``drum_env.rewards.SHAPINGS``)."""
    seed: int = 0
    """Seeds the primers (round ``r`` resets group ``i`` with ``10_000 * (seed + 1) + 1_000 * r +
    i``), the policy's draws and the pair order."""

    def __post_init__(self) -> None:
        for name in ("rounds", "primers", "epochs", "pairs_per_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.takes, bool) or not isinstance(self.takes, int) or self.takes < 2:
            raise ValueError(f"takes must be an int >= 2 (a pair needs two), got {self.takes!r}")
        value = self.energy_coef
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0):  # fmt: skip
            raise ValueError(f"energy_coef must be a finite number >= 0, got {value!r}")
        for name in ("beta", "learning_rate", "max_grad_norm"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):  # fmt: skip
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        from drum_env.rewards import SHAPINGS

        if self.shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {sorted(SHAPINGS)}, got {self.shaping!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")


class Takes(NamedTuple):
    """What :func:`play_takes` returns: one episode of every sub-env."""

    obs: dict[str, np.ndarray]
    """Observation key -> array (steps, takes, ...): what the policy saw at each step."""
    actions: np.ndarray
    """(steps, takes, drums): what it played."""
    returns: np.ndarray
    """float64 (takes,): the episode returns under the env's shaping."""
    windows: np.ndarray
    """int (takes,): the reference window of each take."""
    canvases: np.ndarray
    """(takes, seq_len, drums): each take's whole canvas at its episode's end (the primer's
    steps first; velocities in an expressive env)."""
    prompt_steps: int
    """Steps of primer at the start of each canvas."""


def dpo_loss(logp_w: Tensor, logp_l: Tensor, ref_w: Tensor, ref_l: Tensor,
             beta: float) -> tuple[Tensor, Tensor]:  # fmt: skip
    """DPO's loss over a batch of pairs, and the share of pairs the policy already orders right.

    Args:
        logp_w: (B,) log-probabilities of the preferred takes under the policy being trained.
        logp_l: (B,) the same of the other takes.
        ref_w: (B,) the preferred takes' log-probabilities under the frozen reference policy.
        ref_l: (B,) the same of the other takes.
        beta: the loss's temperature (> 0).

    Returns:
        loss: scalar, ``mean(-log sigmoid(beta * margin))`` with ``margin = (logp_w - ref_w) -
        (logp_l - ref_l)`` (``log 2`` where the policy is the reference);
        accuracy: scalar, the share of pairs with ``margin > 0``.
    """
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean()


def preference_pairs(returns: np.ndarray, takes: int) -> tuple[np.ndarray, np.ndarray]:
    """The best and the worst take of each group of ``takes`` consecutive takes.

    Args:
        returns: (groups * takes,) episode returns, group ``g`` at ``g * takes ..``.
        takes: takes per group.

    Returns:
        ``(winners, losers)``: int arrays of indices into ``returns``, one pair per group whose
        returns are not all equal (the first best and the first worst on ties).

    Raises:
        ValueError: ``returns`` is not a whole number of groups, or not finite.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 1 or takes < 1 or len(returns) % takes:
        raise ValueError(f"returns must be a 1-D array of groups of {takes} takes, got shape "
                         f"{returns.shape}")  # fmt: skip
    if not np.isfinite(returns).all():
        raise ValueError("returns must be finite")
    grouped = returns.reshape(-1, takes)
    base = np.arange(len(grouped)) * takes
    keep = grouped.max(1) > grouped.min(1)
    return (grouped.argmax(1) + base)[keep], (grouped.argmin(1) + base)[keep]


def play_takes(policy: Any, env: Any, takes: int, seed: int,
               generator: torch.Generator) -> Takes:  # fmt: skip
    """One episode of every sub-env of ``env``, sub-envs in groups of ``takes`` sharing a primer.

    Group ``g`` (sub-envs ``g * takes ..``) is reset with seed ``seed + g``: its sub-envs draw the
    same window (the reset draws it from the sub-env's seeded generator), so they share the
    primer and the reference, and the policy's draws (``generator``) make the takes differ.

    Args:
        policy: a drum-env policy (:class:`~agents.policies.policy.DrumPolicy` or
            :class:`~agents.policies.mlp.MLPPolicy`); played in eval mode, without gradients.
        env: a ``DrumCompose-v0`` vector env (``gymnasium.make_vec``) with a multiple of
            ``takes`` sub-envs.
        takes: takes per primer.
        seed: the first group's reset seed.
        generator: samples the policy's actions.

    Returns:
        Takes.

    Raises:
        ValueError: the number of sub-envs is not a multiple of ``takes``.
    """
    from agents.policies.policy import obs_to_tensors

    n = env.num_envs
    if n % takes:
        raise ValueError(f"the env's {n} sub-envs are not a whole number of groups of {takes}")
    obs, info = env.reset(seed=[seed + i // takes for i in range(n)])
    windows = np.asarray(info["window"])
    if not (windows.reshape(-1, takes) == windows.reshape(-1, takes)[:, :1]).all():
        raise RuntimeError("sub-envs reset with one seed drew different windows")
    device = next(policy.parameters()).device
    policy.eval()
    seen: dict[str, list[np.ndarray]] = {k: [] for k in obs}
    actions, returns = [], np.zeros(n)
    while True:
        with torch.no_grad():
            act, _, _ = policy.act(obs_to_tensors(obs, device), generator=generator)
        act = act.cpu().numpy()
        for k, v in obs.items():
            seen[k].append(np.array(v, copy=True))
        actions.append(act)
        obs, reward, terminated, truncated, _ = env.step(act)
        returns += reward
        done = np.logical_or(terminated, truncated)
        if done.all():
            break
        if done.any():  # episodes of one env config all have the same length
            raise RuntimeError("the sub-envs' episodes ended at different steps")
    venv = env.unwrapped  # the native vector env keeps the ended canvases until the next step
    return Takes({k: np.stack(v) for k, v in seen.items()}, np.stack(actions), returns, windows,
                 np.array(venv.canvases, copy=True), int(venv.prompt_steps))  # fmt: skip


def take_log_probs(policy: Any, takes: Takes, index: np.ndarray) -> Tensor:
    """Summed log-probability of each take in ``index`` under ``policy``: (len(index),).

    The rows of every step of the takes go through ``policy.evaluate_actions`` in one batch (a
    whole-canvas Transformer runs one causal pass per take for them), so gradients flow when
    ``policy`` trains.
    """
    from agents.policies.policy import obs_to_tensors

    device = next(policy.parameters()).device
    steps = takes.actions.shape[0]
    obs = obs_to_tensors({k: v[:, index].reshape(-1, *v.shape[2:]) for k, v in takes.obs.items()},
                         device)  # fmt: skip
    actions = torch.as_tensor(takes.actions[:, index].reshape(-1, takes.actions.shape[-1]),
                              device=device)  # fmt: skip
    log_prob, _, _ = policy.evaluate_actions(obs, actions)
    return log_prob.view(steps, len(index)).sum(0)


def _batched_log_probs(policy: Any, takes: Takes, index: np.ndarray, size: int = 64) -> Tensor:
    return torch.cat([take_log_probs(policy, takes, index[i:i + size])
                      for i in range(0, len(index), size)])  # fmt: skip


def finetune(
    policy: Any,
    env_kwargs: Mapping[str, Any],
    config: PreferenceConfig,
    on_round: Callable[[int, Any], None] | None = None,
) -> list[dict[str, float]]:
    """Fine-tune ``policy`` in place by online DPO against a frozen copy of itself.

    The policy stays in eval mode throughout (no dropout), so at the first step it *is* the
    reference and every pair's loss is ``log 2``, as DPO assumes.

    Args:
        policy: a drum-env policy (trained in place; its own device).
        env_kwargs: ``DrumCompose-v0`` keyword arguments of the training primers (their
            ``shaping`` and ``weights`` are replaced by ``config.shaping``'s).
        config: the run.
        on_round: called as ``on_round(round, policy)`` after each round's update (e.g. to
            score it).

    Returns:
        One dict per round: ``round``, ``mean_return`` (the round's takes), ``return_gap``
        (best minus worst take, mean over primers), ``pairs``, ``loss`` and ``accuracy``
        (DPO's, mean over the round's last epoch).
    """
    import gymnasium as gym

    import drum_env  # noqa: F401  (registers DrumCompose-v0)

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    kwargs = {**dict(env_kwargs), "shaping": config.shaping}
    kwargs.pop("weights", None)
    env = gym.make_vec("DrumCompose-v0", num_envs=config.primers * config.takes,
                       vectorization_mode="vector_entry_point", **kwargs)  # fmt: skip
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, eps=1e-5)
    witness = None
    if config.energy_coef > 0:
        from agents.training.discriminator import EnergyWitness, real_windows

        venv: Any = env.unwrapped  # the native vector env (its config, its primer length)
        c = venv.config
        real = real_windows(venv, c.seq_len, venv.prompt_steps, config.seed)
        witness = EnergyWitness(list(real), c.steps_per_bar, c.bars_per_phrase,
                                coef=config.energy_coef, replay=1, seed=config.seed)  # fmt: skip
    history = []
    try:
        for r in range(1, config.rounds + 1):
            takes = play_takes(policy, env, config.takes,
                               10_000 * (config.seed + 1) + 1_000 * r, generator)  # fmt: skip
            scores = takes.returns
            if witness is not None:  # the round's takes are the composed set
                composed = list(takes.canvases[:, takes.prompt_steps:] > 0)
                scores = scores + witness.reward(composed)
            winners, losers = preference_pairs(scores, config.takes)
            grouped = takes.returns.reshape(-1, config.takes)
            row = {"round": float(r), "mean_return": float(takes.returns.mean()),
                   "return_gap": float((grouped.max(1) - grouped.min(1)).mean()),
                   "pairs": float(len(winners)), "loss": math.nan,
                   "accuracy": math.nan}  # fmt: skip
            if len(winners):
                with torch.no_grad():
                    ref_w = _batched_log_probs(reference, takes, winners)
                    ref_l = _batched_log_probs(reference, takes, losers)
                for _ in range(config.epochs):
                    order = torch.randperm(len(winners), generator=generator).numpy()
                    losses, accuracies = [], []
                    for i in range(0, len(order), config.pairs_per_batch):
                        b = order[i:i + config.pairs_per_batch]
                        loss, accuracy = dpo_loss(
                            take_log_probs(policy, takes, winners[b]),
                            take_log_probs(policy, takes, losers[b]),
                            ref_w[b], ref_l[b], config.beta,
                        )  # fmt: skip
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                        optimizer.step()
                        losses.append(loss.item())
                        accuracies.append(accuracy.item())
                row["loss"], row["accuracy"] = float(np.mean(losses)), float(np.mean(accuracies))
            history.append(row)
            if on_round is not None:
                on_round(r, policy)
                policy.eval()
    finally:
        env.close()
    return history
