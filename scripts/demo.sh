#!/usr/bin/env bash
# The main job end to end on the built-in corpus, in a few minutes on a laptop CPU:
# install into .venv (if needed), summarise the corpus, pretrain the policy (next-step
# prediction), fine-tune it with PPO on the default (aligned) reward with a KL penalty to the
# pretrained policy, and compose four takes (.mid, .npz, .png, .wav) under runs/demo/takes.
# Safe to run again: each run starts afresh in runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
rm -rf runs/demo
.venv/bin/drum-env stats --seq-len 64
.venv/bin/drum-env pretrain --seq-len 64 --epochs 1000 --max-steps 2000 --out runs/demo/pretrain --no-progress
.venv/bin/drum-env train --seq-len 64 --total-timesteps 65536 --pretrained runs/demo/pretrain/policy.pt \
  --kl-coef 0.05 --out runs/demo/ppo --no-progress
.venv/bin/drum-env generate runs/demo/ppo/policy.pt --seq-len 64 --num 4 --wav --out runs/demo/takes
