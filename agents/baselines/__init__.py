"""Baselines: Stable-Baselines3 PPO and A2C on the same env, and their ``model.zip`` read as data.

* :mod:`agents.baselines.sb3`: ``train_baseline(BaselineConfig) -> BaselineResult``.
* :mod:`agents.baselines.sb3_load`: ``load_sb3_zip``, which never unpickles the zip.
"""
