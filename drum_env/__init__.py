"""drum-env: Gymnasium environments for reinforcement learning on drum sequences.

``import drum_env`` registers ``DrumCompose-v0`` (single env, and its native vector form for
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``). Importing it does not
import torch.
"""

import importlib.util
import os
import sys

from gymnasium.envs.registration import register


def _check_sibling(name: str) -> None:
    """Refuse a module ``name`` that is not drum-env's own top-level package of that name.

    drum-env installs the top-level packages ``dataset``, ``drum_env`` and ``agents``; a user's
    own ``dataset.py`` (or ``agents.py``) in the working directory shadows ours and would fail
    deep inside an import. Say so at once instead.
    """
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if module is None:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if origin is None or os.path.dirname(os.path.dirname(os.path.abspath(origin))) != ours:
        raise ImportError(
            f"drum-env needs its own top-level package {name!r}, but {origin or 'nothing'!s} "
            f"shadows it (a file or folder named {name!r} in the working directory or earlier "
            "on sys.path): rename it, or run from another folder"
        )


_check_sibling("dataset")

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
