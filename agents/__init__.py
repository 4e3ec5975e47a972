"""Learning on drum-env: the custom policy, pretraining, PPO, SB3 baselines, tuning and the CLI."""
