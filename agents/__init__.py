"""Learning on drum-env: the custom policy, pretraining, PPO, SB3 baselines, tuning and the CLI.

Grouped by role: :mod:`agents.policies` (models, action maths, save/load), :mod:`agents.training`
(pretraining, PPO, checkpoints, DDP), :mod:`agents.evaluation` (rollouts, held-out scores,
alignment, benchmark, generate), :mod:`agents.baselines` (SB3); beside them the task spec
(:mod:`agents.task`), the tuner (:mod:`agents.tune`) and the command line (:mod:`agents.cli`).
The flat module paths of 0.3 (``agents.ppo``, ``agents.policy``, ...) still import: they are
aliases of the modules' new homes (:mod:`agents.aliases`).
"""

import drum_env  # noqa: F401  (registers DrumCompose-v0; refuses a shadowing ``dataset`` or ``agents``)
from agents.aliases import install as _install_aliases

_install_aliases()
