"""Which pip extra installs what a command needs (the one-line error of a missing dependency).

The base install is what the env needs; ``train`` adds torch, SB3 and the logs, ``band``
PettingZoo, ``tune`` optuna and everything ``train`` installs, ``postgres`` the PostgreSQL
driver (``pyproject.toml``). A command that stops on a missing module names the extra that
installs all the command needs, not only the module it tripped on: ``drum-env tune`` without
torch asks for ``drum-env[tune]``.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "COMMAND_EXTRAS", "extra_for"]

EXTRAS = {
    "torch": "train", "stable_baselines3": "train", "tensorboard": "train", "tqdm": "train",
    "rich": "train", "matplotlib": "train", "tyro": "train", "pettingzoo": "band",
    "optuna": "tune", "sqlalchemy": "tune", "psycopg": "postgres", "psycopg2": "postgres",
    "wandb": "track",
}  # fmt: skip
"""The extra that installs each optional dependency (``pip install 'drum-env[EXTRA]'``)."""

COMMAND_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tune": ("tune", ("train", "tune")), "report": ("report", ("train",)),
}  # fmt: skip
"""Per command, the extra that installs all it needs and the extras it includes: ``tune`` needs
torch (``train``) and optuna, so a missing torch asks for ``drum-env[tune]``, which installs both
(``drum-env[train]`` would leave the user one error further); ``report`` plays the agents (torch,
``train``) and renders with FluidSynth where it can (``drum-env[report]``)."""


def extra_for(command: str, module: str) -> str:
    """The extra to install for ``command`` when ``module`` (a key of :data:`EXTRAS`) is missing."""
    extra = EXTRAS[module]
    whole, included = COMMAND_EXTRAS.get(command, (extra, ()))
    return whole if extra in included else extra
