"""Learning on drum-env: the custom policy, pretraining, PPO, SB3 baselines, tuning and the CLI."""

import drum_env  # noqa: F401  (registers DrumCompose-v0; refuses a shadowing ``dataset`` module)
