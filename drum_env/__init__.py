"""drum-env: Gymnasium environments for reinforcement learning on drum sequences.

``import drum_env`` registers ``DrumCompose-v0`` (single env, and its native vector form for
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``). Importing it does not
import torch.
"""

import importlib.util
import os
import sys

from gymnasium.envs.registration import register


def _check_siblings(names: tuple[str, ...] = ("dataset", "agents")) -> None:
    """Refuse modules named ``names`` that are not drum-env's own top-level packages of those names.

    drum-env installs the top-level packages ``dataset``, ``drum_env`` and ``agents``; a user's
    own ``dataset.py`` or ``agents.py`` (or such a folder) in the working directory shadows ours
    and would fail deep inside an import (``'agents' is not a package``). Say so at once, in
    one line that names every shadowing file. A missing ``agents`` (only the env vendored) is
    not a clash; a missing ``dataset`` is, since the env reads its data through it.
    """
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    clashes = []
    for name in names:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else None
        if module is None:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
        if origin is None and name == "agents":
            continue
        if origin is None or os.path.dirname(os.path.dirname(os.path.abspath(origin))) != ours:
            clashes.append(f"{origin or 'nothing'!s} shadows {name!r}")
    if clashes:
        raise ImportError(
            f"drum-env needs its own top-level packages {' and '.join(map(repr, names))}, but "
            f"{'; '.join(clashes)} (a file or folder of that name in the working directory or "
            "earlier on sys.path): rename it, or run from another folder"
        )


_check_siblings()

from drum_env.core import DrumComposeConfig  # noqa: E402
from drum_env.env import DrumComposeEnv  # noqa: E402
from drum_env.rewards import LEVELS, SHAPINGS, TERMS, RunningNormalizer, Shaping, make_shaping  # noqa: E402
from drum_env.vector import DrumComposeVectorEnv  # noqa: E402

__all__ = [
    "DrumComposeConfig",
    "DrumComposeEnv",
    "DrumComposeVectorEnv",
    "LEVELS",
    "SHAPINGS",
    "TERMS",
    "RunningNormalizer",
    "Shaping",
    "make_shaping",
]

__version__ = "0.3.0"

# No max_episode_steps: the episode length follows seq_len and the env always terminates itself.
register(
    id="DrumCompose-v0",
    entry_point="drum_env.env:DrumComposeEnv",
    vector_entry_point="drum_env.vector:DrumComposeVectorEnv",
)
