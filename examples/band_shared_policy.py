"""Train one policy shared by every agent of the drum band (``drum_env.band``), REINFORCE style.

All agents run the same small torch network: at each step their observations, shape
``(agents, obs_size)``, go through it as one batch, and the one-hot agent id at the end of each
observation tells the network which instrument it is playing. The update is plain REINFORCE
with a per-step baseline (the mean reward-to-go over the batch's episodes and agents at that
step), advantages normalised, and an entropy bonus.

The team reward uses the ``hierarchical-raw`` shaping by default: unnormalised rewards give the
same yardstick before and after training (normalised rewards rescale as their running
statistics fill, so their returns before and after are not comparable).

    python examples/band_shared_policy.py                 # about 8,000 env steps, < 60 s on CPU
    python examples/band_shared_policy.py --total-steps 500 --eval-episodes 2   # a smoke run
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from drum_env.band import DrumBandParallelEnv, parallel_env


@dataclass(frozen=True)
class Args:
    """Settings of the example."""

    total_steps: int = 8064
    """Env steps to train for (each step is one action of every agent)."""
    episodes_per_update: int = 4
    """Episodes collected per policy update."""
    eval_episodes: int = 8
    """Episodes of (sampled) play that measure the mean return before and after training."""
    lr: float = 3e-3
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount of the reward-to-go."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    hidden: int = 64
    """Hidden units of the policy."""
    seed: int = 0
    """Seeds the env (through ``reset(seed=...)``) and torch's generator."""
    seq_len: int = 64
    """Steps per episode window (primer included)."""
    shaping: str = "hierarchical-raw"
    """The team reward's shaping (see ``drum_env.rewards.SHAPINGS``)."""


class SharedPolicy(nn.Module):
    """Bernoulli policy over ``hit``: obs float32 ``(agents, obs_size)`` -> logits ``(agents,)``."""

    def __init__(self, obs_size: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )  # fmt: skip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logit of hitting, one per row of ``obs``."""
        return self.net(obs).squeeze(-1)


def play_episode(
    band: DrumBandParallelEnv, policy: SharedPolicy, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Play one episode with every agent sampling from the shared policy.

    Returns:
        ``(log_probs, entropies, rewards)``: tensors ``(steps, agents)`` with gradients, and a
        float64 array ``(steps, agents)``.
    """
    observations, _ = band.reset()
    agents = band.possible_agents
    log_probs, entropies, rewards = [], [], []
    while band.agents:
        obs = torch.from_numpy(np.stack([observations[a] for a in agents]))
        logits = policy(obs)
        probs = torch.sigmoid(logits)
        hits = (torch.rand(probs.shape, generator=gen) < probs.detach()).float()
        dist = torch.distributions.Bernoulli(logits=logits)
        log_probs.append(dist.log_prob(hits))
        entropies.append(dist.entropy())
        actions = {a: int(h) for a, h in zip(agents, hits.tolist())}
        observations, step_rewards, _, _, _ = band.step(actions)
        rewards.append([step_rewards[a] for a in agents])
    return torch.stack(log_probs), torch.stack(entropies), np.asarray(rewards)


def reward_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted reward-to-go: float (steps, agents) -> float (steps, agents)."""
    out = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


@torch.no_grad()
def evaluate(
    band: DrumBandParallelEnv, policy: SharedPolicy, gen: torch.Generator, episodes: int
) -> float:
    """Mean over episodes and agents of the undiscounted episode return."""
    returns = [play_episode(band, policy, gen)[2].sum(axis=0).mean() for _ in range(episodes)]
    return float(np.mean(returns))


def train(args: Args) -> tuple[float, float]:
    """Train the shared policy; return the mean episode return ``(before, after)``."""
    torch.manual_seed(args.seed)  # the policy's initial weights
    gen = torch.Generator().manual_seed(args.seed)  # action sampling
    band = parallel_env(seq_len=args.seq_len, prompt_bars=1, shaping=args.shaping)
    band.reset(seed=args.seed)  # seeds the band's own generator; later resets continue it
    policy = SharedPolicy(band.observation_size, args.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    steps_per_episode = band.config.episode_steps

    before = evaluate(band, policy, gen, args.eval_episodes)
    steps = 0
    while steps < args.total_steps:
        batch = [play_episode(band, policy, gen) for _ in range(args.episodes_per_update)]
        steps += len(batch) * steps_per_episode
        returns = np.stack([reward_to_go(r, args.gamma) for _, _, r in batch])  # (E, T, A)
        advantages = returns - returns.mean(axis=(0, 2), keepdims=True)  # per-step baseline
        advantages /= advantages.std() + 1e-8
        adv = torch.as_tensor(advantages, dtype=torch.float32)
        log_probs = torch.stack([lp for lp, _, _ in batch])
        entropy = torch.stack([ent for _, ent, _ in batch]).mean()
        loss = -(log_probs * adv).mean() - args.entropy_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate(band, policy, gen, args.eval_episodes)
    band.close()
    return before, after


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train, print the mean episode return before and after."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Args()
    parser.add_argument("--total-steps", type=int, default=defaults.total_steps)
    parser.add_argument("--episodes-per-update", type=int, default=defaults.episodes_per_update)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    ns = parser.parse_args(argv)
    args = Args(
        total_steps=ns.total_steps, episodes_per_update=ns.episodes_per_update,
        eval_episodes=ns.eval_episodes, seed=ns.seed,
    )  # fmt: skip
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    start = time.perf_counter()
    before, after = train(args)
    print(f"mean episode return per agent before training: {before:.3f}")
    print(f"mean episode return per agent after training:  {after:.3f}")
    print(f"({args.total_steps} env steps, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
