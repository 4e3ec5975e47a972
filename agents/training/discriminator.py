"""A reward learned from data: a discriminator of real vs composed continuations (opt-in).

GAIL (Ho & Ermon 2016) and RL-Duet (Jiang et al. 2020) learn part of the reward: a classifier
``D(x)`` tells real continuations from the policy's, and the policy is rewarded for fooling it.
Here ``D`` reads what the held-out evaluation reads: the per-sequence features of the
evaluation's families (:func:`dataset.evaluation.feature_matrix`, the same density, IOI,
syncopation, transition, n-gram, entropy, pattern, metrical-position and registered song
features the headline compares), standardised by the real features' mean and deviation. It is a
small MLP (``features -> 64 -> 64 -> 1``, tanh) trained with the logistic loss on

* real: the continuations (steps ``prompt_steps:seq_len``) of the env's windows, the training
  data (never a held-out part; a seeded sample of at most ``DISC_REAL`` of them), and
* composed: the composed part of the episodes the policy finished in the last few iterations
  (a replay of :attr:`FeatureDiscriminator.replay` iterations, so ``D`` does not chase one
  batch),

``updates`` Adam steps per iteration, each on a minibatch of composed takes and as many real
ones (drawn with the trainer's shuffling generator, so a resumed run draws the same). An
episode that ends earns, on its last step, the extra reward

    r_disc = coef * clip(logit D(x), -clip, clip)

the log-ratio ``log D / (1 - D)``, which for the optimal ``D`` is ``log p_real(x) / p_gen(x)``:
its expectation under the policy is ``-KL(p_gen || p_real)`` of the feature distributions: the
mismatch that the headline measures another way, by each feature's overlapping area. The dense
env terms stay as they are; the discriminator's term is added after their normalisation and
weighting (:func:`add_discriminator_reward`). Under DDP the gradients of ``D`` are averaged
over the ranks, so every rank holds the same ``D``; each keeps its own replay (saved per rank).

Measured on held-out drummers (README "Results"): the term is learnable (``D`` ends a run at
0.79-0.88 accuracy) but RL on it did not raise the held-out headline above the pretrained
policy at its best temperature; it is opt-in, a tool for research on learned rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["DISC_REAL", "EnergyWitness", "FeatureDiscriminator", "add_discriminator_reward",
           "real_windows"]

DISC_REAL = 4096
"""At most this many real continuations (a seeded sample of the env's windows) for ``D``."""


class FeatureDiscriminator:
    """``D`` over the evaluation's features, its optimiser, replay and reward (module docstring).

    Args:
        real: the real continuations (equal lengths), the positive class.
        steps_per_bar: steps in one bar (the features' grid).
        bars_per_phrase: bars in one phrase.
        coef: the reward's weight ``coef``.
        clip: the logit's bound ``clip``.
        hidden: width of the two hidden layers.
        lr: Adam's learning rate.
        updates: Adam steps per :meth:`update`.
        batch: composed takes per step (and as many real ones).
        replay: iterations of composed takes kept for training.
        seed: seeds the initialisation (the caller's global torch state is left alone).
        device: where the MLP lives.
    """

    def __init__(self, real: Sequence[np.ndarray], steps_per_bar: int, bars_per_phrase: int,
                 coef: float = 1.0, clip: float = 5.0, hidden: int = 64, lr: float = 1e-3,
                 updates: int = 8, batch: int = 64, replay: int = 4, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:  # fmt: skip
        from dataset.evaluation import feature_matrix

        if len(real) < 2:
            raise ValueError(f"the discriminator needs at least 2 real continuations, got "
                             f"{len(real)}")  # fmt: skip
        self.steps_per_bar, self.bars_per_phrase = steps_per_bar, bars_per_phrase
        self.coef, self.clip, self.updates, self.batch = coef, clip, updates, batch
        self.replay = replay
        self.device = torch.device(device)
        x, self.names, self.reference = feature_matrix(real, steps_per_bar, bars_per_phrase)
        self.mean = x.mean(axis=0)
        self.scale = np.where(x.std(axis=0) > 1e-8, x.std(axis=0), 1.0)
        self.real = torch.as_tensor(self._standard(x), dtype=torch.float32, device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(x.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                nn.Linear(hidden, 1),
            ).to(self.device)  # fmt: skip
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.composed: list[Tensor] = []

    def _standard(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale

    def features(self, takes: Sequence[np.ndarray]) -> Tensor:
        """Standardised feature rows (N, F) of composed takes (the real set fixes the columns)."""
        from dataset.evaluation import feature_matrix

        x, _, _ = feature_matrix(takes, self.steps_per_bar, self.bars_per_phrase,
                                 real=self.reference)  # fmt: skip
        return torch.as_tensor(self._standard(x), dtype=torch.float32, device=self.device)

    def logits(self, x: Tensor) -> Tensor:
        """``logit D(x)`` of standardised feature rows."""
        return self.net(x).squeeze(-1)

    def reward(self, takes: Sequence[np.ndarray]) -> np.ndarray:
        """float64 (N,): ``coef * clip(logit D(x), -clip, clip)`` of each take."""
        return self.reward_rows(self.features(takes)) if len(takes) else np.zeros(0)

    def reward_rows(self, x: Tensor) -> np.ndarray:
        """:meth:`reward` of takes already turned into feature rows (:meth:`features`)."""
        with torch.no_grad():
            z = self.logits(x).clamp(-self.clip, self.clip)
        return self.coef * z.double().cpu().numpy()

    def update(self, takes: Sequence[np.ndarray], generator: torch.Generator,
               reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:  # fmt: skip
        """Add ``takes`` to the replay, take :attr:`updates` Adam steps; the mean loss, accuracy.

        The metrics: ``disc/loss`` and ``disc/accuracy`` (real scored > 0, composed < 0).
        ``generator`` draws the minibatches (CPU). ``reduce`` averages a flat gradient over the
        ranks under DDP (every rank then holds the same ``D``, each training on its own
        replay).
        """
        return self.update_rows(self.features(takes) if len(takes) else None, generator, reduce)

    def update_rows(self, x: Tensor | None, generator: torch.Generator,
                    reduce: Callable[[Tensor], Tensor] | None = None
                    ) -> dict[str, float]:  # fmt: skip
        """:meth:`update` with the takes already turned into feature rows (or None: no takes)."""
        if x is not None:
            self.composed.append(x)
            self.composed = self.composed[-self.replay:]
        if not self.composed:
            return {"disc/loss": float("nan"), "disc/accuracy": float("nan")}
        fake = torch.cat(self.composed)
        bce = nn.functional.binary_cross_entropy_with_logits
        losses, correct = [], []
        for _ in range(self.updates):
            k = min(self.batch, len(fake))
            f = fake[torch.randint(len(fake), (k,), generator=generator)]
            r = self.real[torch.randint(len(self.real), (k,), generator=generator)]
            zr, zf = self.logits(r), self.logits(f)
            loss = bce(zr, torch.ones_like(zr)) + bce(zf, torch.zeros_like(zf))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if reduce is not None:
                params = [p for p in self.net.parameters() if p.grad is not None]
                flat = reduce(torch.cat([p.grad.reshape(-1) for p in params]))
                torch.nn.utils.vector_to_parameters(flat, [p.grad for p in params])
            self.optimizer.step()
            losses.append(float(loss.detach()))
            correct.append(float(((zr > 0).float().mean() + (zf < 0).float().mean()) / 2))
        return {"disc/loss": float(np.mean(losses)), "disc/accuracy": float(np.mean(correct))}

    def state_dict(self) -> dict[str, Any]:
        """The MLP and its optimiser (the same on every rank); see :meth:`replay_state`."""
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])

    def replay_state(self) -> dict[str, np.ndarray]:
        """This rank's replay as numpy: ``rows`` (N, F) float32 and ``sizes`` (iterations,)."""
        rows = (torch.cat(self.composed).cpu().numpy() if self.composed
                else np.zeros((0, self.real.shape[1]), dtype=np.float32))  # fmt: skip
        return {"rows": rows, "sizes": np.array([len(c) for c in self.composed], dtype=np.int64)}

    def load_replay_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`replay_state`'s output."""
        rows = torch.as_tensor(np.asarray(state["rows"], dtype=np.float32), device=self.device)
        self.composed = list(torch.split(rows, [int(k) for k in state["sizes"]]))


class EnergyWitness(FeatureDiscriminator):
    """A reward from data with nothing to train: the energy distance's witness (opt-in).

    Every term of the env's reward is an absolute difference to *one* real continuation, the
    reference of the episode. In expectation over what the drummer might have played, such a
    term is maximised by each feature's conditional median, not by takes distributed as
    drummers' are, which is what the headline's overlaps measure. The energy distance between
    the feature distributions of the takes ``X`` and of real continuations ``Y``,

        E(X, Y) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,

    is zero only when they are equal (Szekely & Rizzo 2013; with the L1 norm over features
    standardised by the real set it is a sum of one-dimensional energy distances, each
    ``2 * integral (F_X - F_Y)^2``: a marginal match per feature, as the headline's overlaps are
    per feature). Its functional derivative at a take ``x`` is the reward that lowers it:

        r(x) = coef * sum_k w_k (mean_j |x_k - x'_jk| - mean_j |x_k - y_jk|)

    over the takes of the last ``replay`` iterations and this one (``x'``) and the real
    continuations (``y``), with ``w_k = 1 / (families * features of k's family)`` so each family
    counts as much as in the headline. A take earns more where takes are rarer than real
    drumming, and a take like many others earns less: unlike a distance to one reference it
    rewards spread as much as closeness. The features are the discriminator's (the headline's,
    :func:`dataset.evaluation.feature_matrix`); there is no network and nothing to train,
    so nothing can overfit or lag. The reward is not clipped (it is bounded by the features'
    spread). Under DDP each rank uses its own replay.
    """

    def __init__(self, real: Sequence[np.ndarray], steps_per_bar: int, bars_per_phrase: int,
                 coef: float = 1.0, replay: int = 16, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:  # fmt: skip
        super().__init__(real, steps_per_bar, bars_per_phrase, coef=coef, replay=replay,
                         seed=seed, device=device)  # fmt: skip
        families = [name.split("/", 1)[0] for name in self.names]
        count = {f: families.count(f) for f in set(families)}
        w = np.array([1.0 / (len(count) * count[f]) for f in families])
        self.weights = torch.as_tensor(w, dtype=torch.float32, device=self.device)
        g = torch.Generator().manual_seed(seed)
        sample = self.real[torch.randperm(len(self.real), generator=g)[:512].to(self.device)]
        self._real_spread = float(self._distance(sample, sample).mean())

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Weighted L1 distances (len(a), len(b)) between standardised feature rows."""
        return torch.cdist(a * self.weights, b * self.weights, p=1)

    def reward_rows(self, x: Tensor) -> np.ndarray:
        """float64 (N,): ``coef * witness(x)`` (class docstring) of feature rows ``x``."""
        if not len(x):
            return np.zeros(0)
        fake = torch.cat([*self.composed, x])
        with torch.no_grad():
            w = self._distance(x, fake).mean(1) - self._distance(x, self.real).mean(1)
        return self.coef * w.double().cpu().numpy()

    def update_rows(self, x: Tensor | None, generator: torch.Generator,
                    reduce: Callable[[Tensor], Tensor] | None = None
                    ) -> dict[str, float]:  # fmt: skip
        """Add ``x`` to the replay; its metric ``disc/energy``.

        That is the energy distance of the replay to the real set (a sample of 512 real rows):
        ``2 E|X - Y| - E|X - X'| - E|Y - Y'|``.
        """
        if x is not None:
            self.composed = [*self.composed, x][-self.replay:]
        if not self.composed:
            return {"disc/energy": float("nan")}
        fake = torch.cat(self.composed)
        real = self.real[torch.randint(len(self.real), (512,), generator=generator)]
        with torch.no_grad():
            energy = (2 * self._distance(fake, real).mean() - self._distance(fake, fake).mean()
                      - self._real_spread)  # fmt: skip
        return {"disc/energy": float(energy)}


def real_windows(venv: Any, seq_len: int, prompt_steps: int, seed: int) -> np.ndarray:
    """The real continuations ``D`` learns from: bool (M, seq_len - prompt_steps, drums).

    The continuations of the env's windows (its ``data``), all of them or a sample of
    :data:`DISC_REAL` seeded with ``seed``, in window order.
    """
    ids = np.arange(len(venv.data.windows))
    if len(ids) > DISC_REAL:
        ids = np.sort(np.random.default_rng(seed).choice(ids, DISC_REAL, replace=False))
    return venv.data.stack(ids, seq_len)[:, prompt_steps:]


def add_discriminator_reward(
    disc: FeatureDiscriminator, takes: Sequence[tuple[int, np.ndarray, np.ndarray]],
    rewards: np.ndarray, prompt_steps: int, generator: torch.Generator,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """Add ``D``'s reward to the episodes that ended in a rollout, then train ``D`` on them.

    Args:
        disc: the discriminator.
        takes: ``(step, sub-envs, canvases)`` of every rollout step where episodes ended
            (:func:`~agents.training.ppo_steps.collect_rollout` with ``takes=[]``): the
            canvases (k, seq_len, drums) of the ``k`` sub-envs that ended at that step.
        rewards: float64 (steps, envs): the trainer's reward, changed in place at those steps.
        prompt_steps: steps of primer at the start of a canvas (the composed part follows).
        generator: draws ``D``'s minibatches.
        reduce: averages ``D``'s gradient over the ranks under DDP.

    Returns:
        ``disc/loss``, ``disc/accuracy`` and ``disc/reward`` (the mean added reward); empty when
        no episode ended.
    """
    if not takes:
        return {}
    composed = [canvas[prompt_steps:] for _, _, canvases in takes for canvas in canvases]
    x = disc.features(composed)  # once, for the reward and for D's training
    extra = disc.reward_rows(x)
    k = 0
    for step, envs, _ in takes:
        rewards[step, envs] += extra[k : k + len(envs)]
        k += len(envs)
    return {**disc.update_rows(x, generator, reduce), "disc/reward": float(extra.mean())}
