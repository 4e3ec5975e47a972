"""drum-env: Gymnasium environments for reinforcement learning on drum sequences.

``import drum_env`` registers ``DrumCompose-v0`` (single env, and its native vector form for
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``). Importing it does not
import torch.
"""

from gymnasium.envs.registration import register

from drum_env.core import DrumComposeConfig
from drum_env.env import DrumComposeEnv
from drum_env.rewards import LEVELS, SHAPINGS, TERMS, RunningNormalizer, Shaping, make_shaping
from drum_env.vector import DrumComposeVectorEnv

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

__version__ = "0.1.0"

# No max_episode_steps: the episode length follows seq_len and the env always terminates itself.
register(
    id="DrumCompose-v0",
    entry_point="drum_env.env:DrumComposeEnv",
    vector_entry_point="drum_env.vector:DrumComposeVectorEnv",
)
