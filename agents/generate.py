"""Compose drum sequences with a trained policy: ``.mid``, ``.npz`` and a piano-roll ``.png``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agents.rollout import Rollouts, rollout_episodes

__all__ = ["GenerateResult", "load_any_policy", "policy_fn", "generate"]


class GenerateResult(NamedTuple):
    """Files written by :func:`generate` and the episodes they came from."""

    files: list[Path]
    rollouts: Rollouts


def load_any_policy(path: str | Path):
    """A :class:`~agents.policy.DrumPolicy` from ``policy.pt`` or a PPO ``checkpoint.pt``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is neither (the message names it).
    """
    from agents.checkpoint import load_checkpoint
    from agents.policy import DrumPolicy, PolicyConfig, load_policy

    payload = load_checkpoint(path)
    if "policy_config" in payload and "model" in payload:  # a PPO training checkpoint
        policy = DrumPolicy(PolicyConfig(**payload["policy_config"]))
        policy.load_state_dict(payload["model"])
        return policy
    return load_policy(path)


def policy_fn(policy: Any, deterministic: bool = False, seed: int = 0):
    """Wrap a :class:`~agents.policy.DrumPolicy` as a batched numpy policy for rollouts.

    Args:
        policy: the torch policy (evaluated on CPU, no gradients).
        deterministic: hit when the probability is > 0.5 instead of sampling.
        seed: seed of the torch generator that samples the actions.

    Returns:
        obs dict of arrays -> int8 actions (num_envs, num_drums).
    """
    import torch

    from agents.policy import obs_to_tensors

    generator = torch.Generator().manual_seed(seed)
    device = next(policy.parameters()).device
    policy.eval()

    def act(obs: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            actions, _, _ = policy.act(
                obs_to_tensors(obs, device), deterministic=deterministic, generator=generator
            )
        return actions.cpu().numpy().astype(np.int8)

    return act


def generate(
    policy_path: str | Path,
    out_dir: str | Path,
    num: int = 4,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    deterministic: bool = False,
    bpm: float = 100.0,
) -> GenerateResult:
    """Compose ``num`` sequences, each continuing a primer drawn from the env's data.

    Writes ``take{i}.mid``, ``take{i}.npz`` (key ``sequence``; also ``reference`` and
    ``prompt_steps``) and ``take{i}.png`` (primer shaded apart from what the policy wrote), and
    ``summary.json`` with each take's return and song term.

    Args:
        policy_path: a policy file (``policy.pt``) or a PPO checkpoint (``checkpoint.pt``).
        out_dir: folder to write to (created).
        num: number of takes.
        env_kwargs: DrumCompose-v0 arguments; must match the policy's observation sizes.
        seed: seeds the episodes (primers) and the action sampling.
        deterministic: threshold the hit probabilities at 0.5 instead of sampling.
        bpm: tempo of the MIDI files.

    Returns:
        GenerateResult.
    """
    from dataset.io import atomic_write
    from dataset.midi import sequence_to_midi
    from drum_env.render import save_piano_roll_png

    policy = load_any_policy(policy_path)
    cfg = policy.config
    kwargs = {"context_steps": cfg.context_steps, "steps_per_bar": cfg.steps_per_bar,
              "bars_per_phrase": cfg.bars_per_phrase, **dict(env_kwargs or {})}  # fmt: skip
    rollouts = rollout_episodes(
        policy_fn(policy, deterministic, seed), kwargs, episodes=num, num_envs=num, seed=seed
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    summary = []
    spb = kwargs["steps_per_bar"]
    for i, (seq, ref) in enumerate(zip(rollouts.sequences, rollouts.references)):
        stem = out / f"take{i}"
        sequence_to_midi(seq, stem.with_suffix(".mid"), bpm=bpm, steps_per_bar=spb)
        atomic_write(stem.with_suffix(".npz"), lambda f, s=seq, r=ref: np.savez_compressed(
            f, sequence=s, reference=r, prompt_steps=rollouts.prompt_steps))
        save_piano_roll_png(
            seq, stem.with_suffix(".png"), steps_per_bar=spb, prompt_steps=rollouts.prompt_steps,
            title=f"take {i}: return {rollouts.returns[i]:.2f}, "
            f"song term {rollouts.song_raw[i]:.3f}",
        )  # fmt: skip
        files += [stem.with_suffix(s) for s in (".mid", ".npz", ".png")]
        summary.append({"take": i, "return": float(rollouts.returns[i]),
                        "song_raw": float(rollouts.song_raw[i])})  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return GenerateResult(files, rollouts)
