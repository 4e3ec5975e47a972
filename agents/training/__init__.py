"""Training: supervised pretraining and PPO, with their run folders, checkpoints, DDP and rewards.

* :mod:`agents.training.pretrain`: next-step pretraining of the policy.
* :mod:`agents.training.ppo`: PPO on the native vector env (``train(PPOConfig) -> TrainResult``),
  read top to bottom like CleanRL's; its set-up helpers in :mod:`agents.training.ppo_setup`, the
  rollout and the update in :mod:`agents.training.ppo_steps`.
* :mod:`agents.training.checkpoint`: crash-safe checkpoint files and exact resume.
* :mod:`agents.training.distributed`: DDP under ``torchrun``, device choice, reductions.
* :mod:`agents.training.trainer_reward`: the trainer-side reward normalisation and weights.
* :mod:`agents.training.runs`: run folders, their lock and ``config.json``.
"""
