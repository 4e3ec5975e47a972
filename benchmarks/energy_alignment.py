"""Does the energy distance rank policies near a pretrained one as the held-out headline does?

The energy witness (:class:`agents.training.discriminator.EnergyWitness`, ``--disc-kind energy``)
rewards a take by how it moves the energy distance between the takes' features and real
drumming's. Its local alignment is then the question of ``local_alignment.py`` asked of the set
score it descends: for a family of policies close to one pretrained policy (the policy sampled
at several temperatures, and any fine-tunings given with ``--policy``), each plays the same
held-out primers; the script reports, over ``--draws`` draws of primers, the Spearman
correlation with the held-out headline of

* ``-energy``: minus the energy distance (the witness's weights) between the takes and the
  **training** split's real continuations (:func:`~agents.training.discriminator.real_windows`,
  the set the trainer's witness compares with: never held-out data), and
* ``aligned-raw return``: the mean unnormalised episode return of the default shaping, and
* ``aligned-raw return - c * energy`` for each weight ``c`` of ``--blend-weights``: the objective
  that PPO with ``aligned`` and ``--disc-kind energy`` ascends. The witness is the energy
  distance's functional derivative, so a policy-gradient step on ``disc_coef * witness`` lowers
  ``disc_coef / 2`` times the energy distance while the env's terms raise the return; the
  trainer normalises the env's terms, so no single ``c`` is *the* trainer's weight, and the
  table shows a range of them.

Writes ``<out>.json`` and ``<out>.md``. ``--from-json`` recomputes the tables from an earlier
run's JSON (its rows) without playing again.

Example::

    python benchmarks/energy_alignment.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --work runs/bench-wc --whole-canvas \\
        --pretrained runs/bench-wc/pretrain/seed0/run/policy.pt \\
        --out benchmarks/results/groove-players-wc/energy_alignment
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent

try:
    from benchmarks.family_gap import policy_arg
except ModuleNotFoundError:  # run as a script: benchmarks/ is sys.path[0]
    from family_gap import policy_arg  # type: ignore[no-redef]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the benchmark's npz folder")
    parser.add_argument("--heldout-players", help="e.g. drummer8,drummer9")
    parser.add_argument("--work", help="the benchmark's --work folder")
    parser.add_argument("--pretrained", help="the family's centre, a policy.pt")
    parser.add_argument("--policy", type=policy_arg, action="append", default=[],
                        help="NAME=PATH: a fine-tuning to add to the family (played at T = 1)")
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.4")
    parser.add_argument("--episodes", type=int, default=256, help="held-out episodes per draw")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--whole-canvas", action="store_true",
                        help="envs show the whole canvas (policies of `--whole-canvas` runs)")
    parser.add_argument("--blend-weights", default="1,2,5,10,20,50",
                        help="weights c of the rows 'aligned-raw return - c * energy'")
    parser.add_argument("--from-json", default=None,
                        help="an earlier run's JSON: recompute its tables, play nothing")
    parser.add_argument("--out", default=str(HERE / "results" / "energy_alignment"))
    args = parser.parse_args(argv)
    command = "python benchmarks/energy_alignment.py " + " ".join(argv or sys.argv[1:])
    weights = [float(c) for c in args.blend_weights.split(",") if c]
    if any(c < 0 for c in weights):
        parser.error(f"--blend-weights must be >= 0, got {args.blend_weights!r}")
    missing = [a for a in ("data", "heldout_players", "work", "pretrained")
               if getattr(args, a) is None]  # fmt: skip
    if args.from_json is None and missing:
        parser.error("the following arguments are required without --from-json: "
                     + ", ".join("--" + a.replace("_", "-") for a in missing))
    if args.from_json is not None:
        earlier = json.loads(Path(args.from_json).read_text())
        return report(earlier["rows"], weights, earlier["command"], earlier["wall_s"],
                      Path(args.out), recomputed_by=command)  # fmt: skip

    import gymnasium as gym
    import numpy as np
    import torch

    import drum_env  # noqa: F401 (registers DrumCompose-v0)

    torch.set_num_threads(1)
    from agents.evaluation.heldout import HeldoutConfig, heldout_dataset, play_draw, reference
    from agents.evaluation.rollout import load_any_policy, policy_fn
    from agents.training.discriminator import EnergyWitness, real_windows
    from dataset.evaluation import score_sets

    players = tuple(p for p in args.heldout_players.split(",") if p)
    config = HeldoutConfig(data=args.data, heldout_players=players, eval_episodes=args.episodes,
                           eval_draws=1, whole_canvas=args.whole_canvas, shaping="aligned-raw")
    work = Path(args.work)
    held = heldout_dataset(config, work / "split" / "heldout")
    ref = reference(config, held)
    kwargs = config.env_kwargs(held)
    t0 = time.perf_counter()
    centre = load_any_policy(args.pretrained)
    # the real continuations the trainer's witness compares with (the training drummers')
    train_env = gym.make_vec("DrumCompose-v0", num_envs=1, vectorization_mode="vector_entry_point",
                             **config.env_kwargs(str(work / "split" / "train")))  # fmt: skip
    real = list(real_windows(train_env.unwrapped, config.seq_len, config.prompt_steps, seed=0))
    train_env.close()
    witness = EnergyWitness(real, config.steps_per_bar, config.bars_per_phrase)
    members = [(f"T={float(t):g}", centre, float(t)) for t in args.temperatures.split(",")]
    members += [(name, load_any_policy(path), 1.0) for name, path in args.policy]
    rows = []
    for name, policy, temp in members:
        row: dict = {"member": name, "headline": [], "energy": [], "return": []}
        for k in range(args.draws):
            r = play_draw(policy_fn(policy, seed=k, temperature=temp), config, kwargs,
                      config.eval_seed + 7919 * k)  # fmt: skip
            p = r.prompt_steps
            score = score_sets(r.sequences[:, p:], r.references[:, p:], config.steps_per_bar,
                               config.bars_per_phrase)  # fmt: skip
            row["headline"].append(ref.baselines.headline(score))
            witness.composed = []
            x = witness.features([s > 0 for s in r.sequences[:, p:]])
            row["energy"].append(witness.update_rows(x, torch.Generator().manual_seed(k))[
                "disc/energy"])  # fmt: skip
            row["return"].append(float(np.mean(r.returns)))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    return report(rows, weights, command, time.perf_counter() - t0, Path(args.out))


def spearman_by_draw(rows: list[dict], weights: list[float]) -> dict[str, list[float]]:
    """Spearman, per draw, of each criterion over the family against the held-out headline."""
    import numpy as np

    from agents.evaluation.alignment import spearman

    heads = np.array([row["headline"] for row in rows])  # (members, draws)
    energy = np.array([row["energy"] for row in rows])
    returns = np.array([row["return"] for row in rows])
    criteria = {"-energy": -energy, "aligned-raw return": returns}
    for c in weights:
        criteria[f"aligned-raw return - {c:g} * energy"] = returns - c * energy
    return {name: [spearman(list(values[:, k]), heads[:, k]) for k in range(heads.shape[1])]
            for name, values in criteria.items()}  # fmt: skip


def report(rows: list[dict], weights: list[float], command: str, wall_s: float, out: Path,
           recomputed_by: str | None = None) -> int:  # fmt: skip
    """Write ``out``.json and .md (the family's rows and the Spearman table) and print it."""
    import numpy as np

    rho = spearman_by_draw(rows, weights)
    result = {"command": command, "machine": platform.platform(), "wall_s": wall_s,
              "rows": rows, "spearman": rho}  # fmt: skip
    if recomputed_by:
        result["recomputed_by"] = recomputed_by
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Made by: `{command}` ({wall_s:.0f} s)."]
    if recomputed_by:
        lines.append(f"Tables recomputed from its JSON by: `{recomputed_by}`.")
    lines += ["",
             "| member | headline (mean over draws) | energy distance to the training drummers | "
             "aligned-raw return |", "|---|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['member']} | {np.mean(row['headline']):.3f} | "
                     f"{np.mean(row['energy']):.4f} | {np.mean(row['return']):.3f} |")
    lines += ["", "| ranks the family like the held-out headline | Spearman per draw | mean |",
              "|---|---|---:|"]  # fmt: skip
    for key, values in rho.items():
        lines.append(f"| {key} | {', '.join(f'{v:.2f}' for v in values)} | "
                     f"{np.mean(values):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
