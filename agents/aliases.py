"""Compatibility aliases: the module paths of drum-env 0.3, before ``agents`` was grouped by role.

Until 0.3 every module of ``agents`` sat in one flat folder (``agents/ppo.py``,
``agents/policy.py``, ...). They now live in rooms by role (:data:`MOVED`): ``agents.policies``,
``agents.training``, ``agents.evaluation`` and ``agents.baselines``. The old paths keep working
for users, scripts and notebooks: ``import agents.ppo`` or ``from agents.rollout import
policy_fn`` gives the module at its new home, the very same module object
(``agents.ppo is agents.training.ppo``), so its names, private ones included, its patches and
anything pickled under the old path resolve as before. New code imports the new paths.

Why an import hook rather than one re-export file per old path: eighteen thin files would put
the flat room back beside the grouped one, and a file at the old path would stop git from
following the move (``git log --follow``, merges of concurrent work on the moved files).
:func:`install` puts :class:`AliasFinder` first in :data:`sys.meta_path` (ahead of a stale
editable install's finder, which could still map an old path to an old file); it answers for
the names of :data:`MOVED` only. ``import agents`` installs it.

Nothing saved by drum-env records a module path (``policy.pt`` and ``checkpoint.pt`` hold
tensors and plain data read with ``weights_only=True``; an SB3 ``model.zip`` names SB3's own
policy class; the JSON sidecars hold settings), so these aliases are for imports only.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

__all__ = ["MOVED", "AliasFinder", "install"]

MOVED: dict[str, str] = {
    "agents.policy": "agents.policies.policy",
    "agents.critic": "agents.policies.critic",
    "agents.compat": "agents.policies.compat",
    "agents.ppo": "agents.training.ppo",
    "agents.pretrain": "agents.training.pretrain",
    "agents.checkpoint": "agents.training.checkpoint",
    "agents.distributed": "agents.training.distributed",
    "agents.trainer_reward": "agents.training.trainer_reward",
    "agents.runs": "agents.training.runs",
    "agents.rollout": "agents.evaluation.rollout",
    "agents.heldout": "agents.evaluation.heldout",
    "agents.alignment": "agents.evaluation.alignment",
    "agents.temperature": "agents.evaluation.temperature",
    "agents.benchmark": "agents.evaluation.benchmark",
    "agents.benchmark_report": "agents.evaluation.benchmark_report",
    "agents.generate": "agents.evaluation.generate",
    "agents.sb3": "agents.baselines.sb3",
    "agents.sb3_load": "agents.baselines.sb3_load",
}
"""Old module path (0.3) -> the module's home now."""


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new home (imported there, under its new name)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module executed at its new home."""


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of :data:`MOVED` (and only those)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec that loads ``fullname``'s new home, or ``None`` for any other name."""
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Answer the old module paths from now on (once; ``import agents`` calls it)."""
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())
