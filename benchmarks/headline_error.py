"""How precise is the held-out headline? Its standard error under 0.3's and today's defaults.

For each evaluation setting (episodes per draw x draws, windows drawn by the env or stratified
by file), on one split:

* the ceiling and floors (:func:`agents.evaluation.heldout.reference`: mean ± spread over halvings,
  and the bootstrap standard error of one halving's headline);
* the benchmark's players: loop-the-primer, the random agent at the training split's per-drum
  rates (density-matched random) and, with ``--pretrain-steps``, a policy pretrained on the
  training split (sampled; a learned player near the ones RL is judged on), each evaluated
  ``repeats`` times with other primers (``eval_seed`` moved by ``100003 * r``): the mean
  headline, the standard error the evaluation **reports**
  (:func:`agents.evaluation.heldout.evaluate`'s ``headline_se``, mean over the repeats) and the one
  **measured** (the standard deviation of the repeats' headlines), and the seconds one evaluation
  takes;
* the headline of those players without the ``metrical_position`` family (0.3's family set;
  the discriminative families otherwise as they are), and the per-position mode and random
  bars at the reference's own per-drum densities, played offline on the episodes' windows:
  what the new family changes (the probe of
  :func:`agents.evaluation.alignment.random_bars_with_variations` among them).

Run (drummers 8 and 9 held out, as the README's results)::

    drum-env convert ../shared/data/groove-midi runs/groove-npz
    python benchmarks/headline_error.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9

Writes ``benchmarks/results/headline_error.{json,md}`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
OLD = (64, 1, False)  # 0.3's defaults: 64 episodes, one draw, windows drawn by the env
NEW_FAMILY = "metrical_position"


def _setting(text: str) -> tuple[int, int, bool]:
    """``EPISODES:DRAWS:strat`` or ``EPISODES:DRAWS:env``."""
    episodes, draws, how = text.split(":")
    if how not in ("strat", "env"):
        raise argparse.ArgumentTypeError(f"{text!r}: the third part is 'strat' or 'env'")
    return int(episodes), int(draws), how == "strat"


def _offline_players(config, heldout, ref, rng: np.random.Generator) -> dict[str, float]:
    """Headlines (with and without the new family) of players built from reference windows."""
    from agents.evaluation.heldout import stratified_counts
    from dataset.evaluation import score_sets

    lengths = np.array([len(s) for s in heldout.sequences])
    idx = np.asarray(heldout.sample_indices).reshape(-1, 2)
    full = idx[idx[:, 1] + config.seq_len <= lengths[idx[:, 0]]]
    _, stratum, sizes = np.unique(full[:, 0], return_inverse=True, return_counts=True)
    counts = stratified_counts(sizes, min(config.eval_episodes * config.eval_draws, len(full)),
                               cap=True)  # fmt: skip
    pick = np.concatenate([rng.choice(np.flatnonzero(stratum == f), k, replace=False)
                           for f, k in enumerate(counts)])  # fmt: skip
    p, spb = config.prompt_steps, config.steps_per_bar
    refs = np.stack([np.asarray(heldout.sequences[s][st + p: st + config.seq_len]) > 0
                     for s, st in full[pick]]).astype(np.float32)  # fmt: skip
    n, steps, drums = refs.shape
    bars = refs.reshape(n, steps // spb, spb, drums).mean(axis=1)  # (n, spb, drums)
    density = refs.mean(axis=1, keepdims=True)  # (n, 1, drums)
    first = rng.random((n, spb, drums)) < density  # random bars repeated with variations, as
    repeated = np.tile(first, (1, steps // spb, 1))  # the alignment probe: each hit kept
    repeated[:, spb:] &= rng.random((n, steps - spb, drums)) >= 0.15  # with 0.85, others
    repeated[:, spb:] |= rng.random((n, steps - spb, drums)) < 0.15 * density  # added
    players = {
        "per-position mode of the reference": np.tile(bars > 0.5, (1, steps // spb, 1)),
        "random at the reference's per-drum densities": rng.random(refs.shape) < density,
        "random bars at those densities, repeated with variations": repeated,
        "hits at the reference's positions (per-position rates)": rng.random(refs.shape)
        < np.tile(bars, (1, steps // spb, 1)),
    }
    out = {}
    for name, takes in players.items():
        score = score_sets(takes.astype(np.float32), refs, spb, config.bars_per_phrase)
        out[name] = _both(ref, score.families)
    return out


def _both(ref, families: dict[str, float]) -> dict[str, float]:
    """The headline with the discriminative families, and without the new one."""
    disc = ref.baselines.discriminative
    old = [f for f in disc if f != NEW_FAMILY]
    return {"headline": float(np.mean([families[f] for f in disc])),
            "without_metrical": float(np.mean([families[f] for f in old])),
            "metrical_position": float(families.get(NEW_FAMILY, float("nan")))}  # fmt: skip


def _pretrained(args: argparse.Namespace, config, train_dir: Path) -> str | None:
    """A policy pretrained on the training split (cached in ``work/pretrain``), or ``None``."""
    if not args.pretrain_steps:
        return None
    out = Path(args.work) / "pretrain"
    path = out / "policy.pt"
    if path.is_file() and (out / "steps.txt").is_file() and \
            (out / "steps.txt").read_text() == str(args.pretrain_steps):  # fmt: skip
        return str(path)
    from agents.training.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(**{**config.task_fields(), "data": str(train_dir)}, epochs=10_000,
                         max_steps=args.pretrain_steps, seed=0, device="cpu", out=str(out),
                         force=True, progress=False)  # fmt: skip
    pretrain(cfg)
    (out / "steps.txt").write_text(str(args.pretrain_steps))
    return str(path)


def measure(args: argparse.Namespace, setting: tuple[int, int, bool]) -> dict:
    """Every number of one setting (see the module docstring)."""
    from agents.evaluation.heldout import (
        HeldoutConfig,
        evaluate,
        heldout_dataset,
        reference,
        write_split,
    )
    from agents.evaluation.rollout import load_any_policy, loop_policy, policy_fn, random_policy
    from dataset.metrics import as_hits

    episodes, draws, stratify = setting
    players = tuple(args.heldout_players.split(",")) if args.heldout_players else None
    config = HeldoutConfig(data=args.data, heldout_players=players, eval_episodes=episodes,
                           eval_draws=draws, stratify=stratify)  # fmt: skip
    split = write_split(config, args.work)
    held = heldout_dataset(config, split.heldout_dir)
    train = heldout_dataset(config, split.train_dir)
    rates = sum(as_hits(s).sum(axis=0) for s in train.sequences) / sum(
        len(s) for s in train.sequences)
    t = time.perf_counter()
    ref = reference(config, held)
    ref_s = time.perf_counter() - t
    base = ref.baselines
    refs = {name: {"mean": m, "spread": sd, "se": ref.headline_se[name]}
            for name, (m, sd) in ref.headline.items()}  # fmt: skip
    attrs = {"ceiling": "real_vs_real", "uniform_random": "uniform_random",
             "density_random": "density_random", "silence": "silence"}  # fmt: skip
    for name, attr in attrs.items():  # the first halving, with and without the new family
        refs[name].update({f"first_halving_{k}": v for k, v in
                           _both(ref, getattr(base, attr).families).items()})  # fmt: skip
    num_drums = len(rates)
    pretrained = _pretrained(args, config, split.train_dir)
    makers = {
        "loop": lambda r: loop_policy(num_drums, config.context_steps, config.steps_per_bar),
        "density_random": lambda r: random_policy(num_drums, rates, seed=r),
    }
    if pretrained is not None:
        model = load_any_policy(pretrained)
        makers["pretrained"] = lambda r: policy_fn(model, seed=r)
    result = {"episodes": episodes, "draws": draws, "stratify": stratify,
              "reference_s": ref_s, "reference_windows": ref.windows, "files": ref.files,
              "heldout_windows": ref.heldout_windows, "discriminative": list(base.discriminative),
              "references": refs, "players": {}}  # fmt: skip
    for player, make in makers.items():
        rows = []
        for r in range(args.repeats):
            policy = make(r)
            cfg = dataclasses.replace(config, eval_seed=config.eval_seed + 100_003 * r)
            t = time.perf_counter()
            out = evaluate(policy, cfg, cfg.env_kwargs(held), ref, draws=draws)
            out["eval_s"] = time.perf_counter() - t
            out.update({f"{k}": v for k, v in _both(ref, {f: out[f"oa_{f}"] for f in
                        base.discriminative}).items() if k != "headline"})  # fmt: skip
            rows.append(out)
        heads = np.array([row["headline"] for row in rows])
        result["players"][player] = {
            "headline": float(heads.mean()),
            "se_reported": float(np.mean([row["headline_se"] for row in rows])),
            "se_measured": float(heads.std(ddof=1)) if len(heads) > 1 else float("nan"),
            "without_metrical": float(np.mean([row["without_metrical"] for row in rows])),
            "metrical_position": float(np.mean([row["metrical_position"] for row in rows])),
            "eval_s": float(np.mean([row["eval_s"] for row in rows])),
            "repeats": [{k: row[k] for k in ("headline", "headline_se", "headline_draw_std",
                                             "eval_s")} for row in rows],
        }  # fmt: skip
    result["offline"] = _offline_players(config, held, ref, np.random.default_rng(0))
    return result


def markdown(results: list[dict], command: str, took: float, data: str | None) -> str:
    """The report: one row per setting, then the family's effect under the last setting."""
    lines = [
        "# The headline's standard error: 0.3's defaults and today's",
        "",
        f"Made by: `{command}` ({took:.0f} s on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores).",
        "",
        "SE reported: the evaluation's `headline_se` (bootstrap over episodes, paired, "
        "combined with the spread over draws), mean over the repeats; SE "
        "measured: the standard deviation of the headline over the repeats (other primers). "
        "Ceiling and floors: mean ± spread over the halvings, SE the bootstrap of one halving. "
        "Every headline here includes `metrical_position`.",
        "",
        "| setting | ceiling | density-matched floor | player | headline | SE reported | SE "
        "measured | seconds per evaluation | seconds for ceiling and floors |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    names = {"loop": "loop the primer", "density_random": "random at the training rates",
             "pretrained": "pretrained policy (sampled)"}  # fmt: skip
    for r in results:
        how = "stratified by file" if r["stratify"] else "drawn by the env"
        c, d = r["references"]["ceiling"], r["references"]["density_random"]
        head = (f"| {r['episodes']} episodes x {r['draws']} draw(s), {how} | {c['mean']:.3f} ± "
                f"{c['spread']:.3f} (SE {c['se']:.3f}) | {d['mean']:.3f} (SE {d['se']:.3f}) |")
        for k, (player, v) in enumerate(r["players"].items()):
            lines.append(
                (head if k == 0 else "| | | |") + f" {names[player]} | {v['headline']:.3f} | "
                f"{v['se_reported']:.4f} | {v['se_measured']:.4f} | {v['eval_s']:.1f} | "
                + (f"{r['reference_s']:.1f} |" if k == 0 else " |")
            )
    last = results[-1]
    lines += [
        "",
        f"## What `metrical_position` changes ({last['episodes']} episodes x {last['draws']} "
        "draw(s))",
        "",
        "Headline with the discriminative families (" + ", ".join(last["discriminative"])
        + "), the same without `metrical_position`, and the family's own OA. Ceiling and floors: "
        "the first halving; the offline players are played on stratified reference windows and "
        "scored against those windows.",
        "",
        "| player | headline | without metrical_position | metrical_position OA |",
        "|---|---:|---:|---:|",
    ]
    rows = {f"{k} (ceiling/floor)": {"headline": v["first_halving_headline"],
                                     "without_metrical": v["first_halving_without_metrical"],
                                     "metrical_position": v["first_halving_metrical_position"]}
            for k, v in last["references"].items()}  # fmt: skip
    rows.update({names[key]: v for key, v in last["players"].items()})
    rows.update(last["offline"])
    for name, v in rows.items():
        lines.append(f"| {name} | {v['headline']:.3f} | {v['without_metrical']:.3f} | "
                     f"{v['metrical_position']:.3f} |")  # fmt: skip
    if data and "groove" in data.lower():
        lines += ["", "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML "
                  "2019; Google Magenta), CC BY 4.0."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure every setting, write the JSON and the markdown, print the markdown."""
    from agents.evaluation.heldout import EVAL_DRAWS, EVAL_EPISODES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="npz folder (default: the built-in corpus)")
    parser.add_argument("--heldout-players", default=None, help="e.g. drummer8,drummer9")
    parser.add_argument("--repeats", type=int, default=8, help="evaluations per player")
    parser.add_argument("--pretrain-steps", type=int, default=1500,
                        help="pretrain a policy this many steps (0: no pretrained player)")
    parser.add_argument("--settings", type=_setting, nargs="*", default=None,
                        help="EPISODES:DRAWS:strat|env ... (default: 0.3's and today's)")
    parser.add_argument("--work", default="runs/headline_error")
    parser.add_argument("--name", default="headline_error")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    settings = args.settings or [OLD, (EVAL_EPISODES, EVAL_DRAWS, True)]
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    results = []
    for setting in settings:
        results.append(measure(args, setting))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "players"} |
                         {"players": {p: {k: v for k, v in d.items() if k != "repeats"}
                                      for p, d in results[-1]["players"].items()}},
                         default=str), flush=True)  # fmt: skip
    took = time.perf_counter() - start
    command = "python benchmarks/headline_error.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(results, command, took, args.data)
    (out / f"{args.name}.md").write_text(md, encoding="utf-8")
    payload = {"command": command, "wall_s": took, "machine": platform.platform(),
               "cpus": os.cpu_count(), "date": datetime.date.today().isoformat(),
               "results": results}  # fmt: skip
    (out / f"{args.name}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
