"""Local alignment: among policies near a pretrained one, does the return rank them like the judge?

Global alignment (``alignment_table.py``) asks whether very different players (the real
continuation, the per-position mode, random play, ...) are ranked by their returns as the
shaping-independent headline ranks them. RL climbs a *local* slope: it compares policies close
to the one it is training. This script builds such a family around one pretrained policy, plays
every member on the same held-out episodes (several draws of primers), and reports, per shaping
and per reward term, the Spearman correlation of the mean episode return with the headline on
each draw (:func:`agents.evaluation.alignment.play_family`,
:func:`agents.evaluation.alignment.local_summary`):

* the pretrained policy sampled at temperatures ``--temperatures`` (1 is the policy itself);
* the pretrained policy with nucleus sampling over the step's hit pattern at ``--top-p``
  (:func:`agents.evaluation.players.sample_top_p`);
* PPO fine-tunings of it (``kl_coef`` 0.1, 16 envs x 32 steps, one thread) after
  ``--ppo-steps`` env steps, trained under ``--work`` when missing, sampled at T = 1.

Returns are scored unnormalised and with one normaliser warmed on all of the family's plays,
then frozen. Every raw term of every step is kept, so a weighting costs no replay: when the
default shaping misses Spearman 0.8 on a selection draw (or with ``--search always``), every
weighting of a grid over the terms that close in the binary env (all but ``step``, whose
per-position optimum is the mode) is scored, and the one that ranks the family best on the
*selection* draws while keeping the global property there (the real continuation first,
Spearman >= 0.8 over the reference players of ``alignment_table.py``) is reported on the
*fresh* draws (new primers), never chosen on them. Two more guards against a lucky pick: the
same search on every split of the draws into selection and fresh ones (``split_check``), and
``--other-pretrained``: another start's own family, scored on the fresh draws. The default
shaping is not changed here: what was found goes into the results.

Writes ``<out>/local-<name>.json`` and ``.md`` and prints the table.

Examples::

    python benchmarks/local_alignment.py --episodes 64 --ppo-steps ""   # built-in corpus, quick
    python benchmarks/local_alignment.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --name groove-players \\
        --pretrained runs/exp/pre/big/seed0/run/policy.pt --work runs/local-alignment
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SEARCH_TERMS = ("bar", "phrase", "section", "song", "silence", "repetition", "variety", "metrics")
"""Terms whose weights the search sets (the others stay 0): every term that closes in the binary
env except ``step`` (a function of one step's action: its optimum is the per-position mode)."""
GRID = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)
"""Weights tried for each term of :data:`SEARCH_TERMS`."""


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


REUSED: list[str] = []
"""PPO runs found under ``--work`` and reused (not trained by this call)."""


def train_ppo(pretrained: str, train_dir: Path, steps: int, out: Path, seed: int) -> Path:
    """A short PPO fine-tuning of ``pretrained`` (reused when ``out/policy.pt`` exists)."""
    from agents.evaluation.rollout import load_any_policy
    from agents.training.ppo import PPOConfig, train

    if (out / "policy.pt").is_file():
        REUSED.append(str(out))
        return out / "policy.pt"
    shape = load_any_policy(pretrained).config
    result = train(PPOConfig(
        data=str(train_dir), pretrained=pretrained, kl_coef=0.1, total_timesteps=steps,
        num_envs=16, num_steps=32, d_model=shape.d_model, n_layers=shape.n_layers,
        n_heads=shape.n_heads, seed=seed, threads=1, device="cpu", out=str(out), force=True,
        progress=False, tensorboard=False,
    ))  # fmt: skip
    return result.policy_path


def family(pretrained: str, temperatures: list[float], top_ps: list[float],
           ppo: dict[str, Path]) -> dict:  # fmt: skip
    """The players near ``pretrained``: temperatures, top-p and PPO checkpoints."""
    from agents.evaluation import alignment as al
    from agents.evaluation.rollout import load_any_policy

    base = load_any_policy(pretrained)
    players = {f"T={t:g}": al.policy_player(base, temperature=t) for t in temperatures}
    players |= {f"top-p={p:g}": al.policy_player(base, top_p=p) for p in top_ps}
    players |= {name: al.policy_player(load_any_policy(path)) for name, path in ppo.items()}
    return players


def grid_spearman(sums: np.ndarray, heads: np.ndarray, weights: np.ndarray,
                  chunk: int = 8192) -> np.ndarray:  # fmt: skip
    """Spearman (average ranks for ties) of ``sums @ w`` with ``heads``, per draw and candidate.

    The vectorised form of :func:`agents.evaluation.alignment.spearman` for a grid of weightings.

    Args:
        sums: float (draws, players, terms); heads: float (draws, players);
        weights: float (terms, candidates).

    Returns:
        float (draws, candidates); 0 where a side is constant.
    """

    def avg_ranks(x: np.ndarray) -> np.ndarray:  # (draws, players, n) -> centred ranks
        below = (x[:, None, :, :] < x[:, :, None, :]).sum(axis=2)
        equal = (x[:, None, :, :] == x[:, :, None, :]).sum(axis=2)
        r = below + 0.5 * (equal - 1)
        return r - r.mean(axis=1, keepdims=True)

    h = avg_ranks(heads[..., None])
    out = np.empty((sums.shape[0], weights.shape[1]))
    for lo in range(0, weights.shape[1], chunk):
        r = avg_ranks(sums @ weights[:, lo : lo + chunk])
        den = np.sqrt((r**2).sum(axis=1) * (h**2).sum(axis=1))
        out[:, lo : lo + chunk] = np.where(
            den > 0, (r * h).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0
        )
    return out


def real_first(play, w: np.ndarray) -> bool:
    """The real continuation strictly first on every draw, normalised and not."""
    i = play.players.index("real")
    ok = True
    for sums in (play.raw, play.norm):
        ret = sums @ w
        ok &= bool(np.all(ret[:, i][:, None] > np.delete(ret, i, axis=1)))
    return ok


class Grid(NamedTuple):
    """Every grid weighting scored on every draw (no replay: the term sums are kept)."""

    weights: np.ndarray
    """float (candidates, len(SEARCH_TERMS))."""
    local: np.ndarray
    """float (draws, candidates): local Spearman, the smaller of raw and normalised."""
    glob: np.ndarray
    """float (draws, candidates): the same over the global reference players."""
    distance: np.ndarray
    """float (candidates,): L1 distance of the weights / their sum from ``aligned``'s."""


def score_grid(local, glob, ranked: tuple[str, ...]) -> Grid:
    """Score every weighting of :data:`GRID` over :data:`SEARCH_TERMS` on every draw."""
    from drum_env.rewards import SHAPINGS, TERMS

    cols = [TERMS.index(t) for t in SEARCH_TERMS]
    grid = np.array([g for g in itertools.product(GRID, repeat=len(cols)) if any(g)])
    w = np.zeros((len(TERMS), len(grid)))
    w[cols] = grid.T
    gi = [glob.players.index(p) for p in ranked]
    loc = np.minimum(grid_spearman(local.raw, local.headlines, w),
                     grid_spearman(local.norm, local.headlines, w))  # fmt: skip
    gl = np.minimum(grid_spearman(glob.raw[:, gi], glob.headlines[:, gi], w),
                    grid_spearman(glob.norm[:, gi], glob.headlines[:, gi], w))  # fmt: skip
    aligned = np.array([SHAPINGS["aligned"].weights[t] for t in SEARCH_TERMS])
    distance = np.abs(grid / grid.sum(axis=1, keepdims=True) - aligned / aligned.sum()).sum(axis=1)
    return Grid(grid, loc, gl, distance)


def ranking(grid: Grid, draws: list[int], min_global: float = 0.8) -> np.ndarray:
    """Candidates best first on the draws ``draws`` (indices): the worst draw's local Spearman,
    then the mean draw's, then nearest ``aligned``; those that miss the global property on one
    of these draws are left out."""
    worst, mean = grid.local[draws].min(axis=0), grid.local[draws].mean(axis=0)
    order = np.lexsort((grid.distance, -mean, -worst))
    return order[grid.glob[draws].min(axis=0)[order] >= min_global]


def search(local, glob, ranked: tuple[str, ...], grid: Grid, draws: list[int],
           min_global: float = 0.8) -> dict:  # fmt: skip
    """The grid weighting that ranks the family best on the draws ``draws`` and keeps the
    global property there (real first, Spearman >= ``min_global`` on every draw)."""
    from agents.evaluation import alignment as al
    from drum_env.rewards import make_shaping

    seeds = tuple(local.draws[i] for i in draws)
    local, glob = part(local, seeds), part(glob, seeds)
    for j in ranking(grid, draws, min_global)[:50]:  # exact recheck with the module's kernels
        weights = {t: float(v) for t, v in zip(SEARCH_TERMS, grid.weights[j])}
        shaping = make_shaping("aligned-raw", weights=weights)
        ls, gs = al.local_summary(local, shaping), al.local_summary(glob, shaping, ranked)
        if gs.worst >= min_global and real_first(glob, shaping.weight_vector):
            return {"weights": weights, "local": ls, "global": gs, "candidates": len(grid.weights),
                    "is_default": bool(grid.distance[j] < 1e-12)}  # fmt: skip
    return {"weights": None, "candidates": len(grid.weights)}


def split_check(grid: Grid, n_select: int, min_global: float = 0.8) -> dict:
    """The search on every split of the draws into ``n_select`` selection draws and the rest:
    how its pick, and ``aligned``, rank the family on the draws left out (no recheck)."""
    n = grid.local.shape[0]
    default = int(np.argmin(grid.distance))
    rows = []
    for chosen in itertools.combinations(range(n), n_select):
        rest = [i for i in range(n) if i not in chosen]
        feasible = ranking(grid, list(chosen), min_global)
        if not len(feasible):  # no weighting keeps the global property on these draws
            continue
        j = feasible[0]
        rows.append({"select": chosen, "weights": grid.weights[j].tolist(),
                     "fresh_mean": float(grid.local[rest, j].mean()),
                     "fresh_worst": float(grid.local[rest, j].min()),
                     "aligned_fresh_mean": float(grid.local[rest, default].mean()),
                     "aligned_fresh_worst": float(grid.local[rest, default].min())})  # fmt: skip
    if not rows:
        return {}
    return {"splits": rows, **{k: float(np.mean([r[k] for r in rows])) for k in (
        "fresh_mean", "fresh_worst", "aligned_fresh_mean", "aligned_fresh_worst")},
        "share_fresh_worst_ge_0.8": float(np.mean([r["fresh_worst"] >= 0.8 for r in rows]))}


def verdict(rec: dict, others: list[dict], target: float = 0.8) -> tuple[bool, str]:
    """Whether the weights found are worth recommending: on the fresh draws they rank the
    family with Spearman >= ``target`` on every draw (raw and normalised), keep the global
    property, and do the same on every other start's family."""
    fresh = rec["fresh"]
    worst = min(*fresh["local"]["spearman_raw"], *fresh["local"]["spearman_norm"])
    glob = min(*fresh["global"]["spearman_raw"], *fresh["global"]["spearman_norm"])
    misses = []
    if worst < target:
        misses.append(f"fresh draws: local Spearman {worst:+.2f} on the worst draw")
    if glob < target or not fresh["real_first"]:
        misses.append("fresh draws: the global property is lost")
    for other in others:
        got = other["summaries"]["found"]
        w = min(*got["spearman_raw"], *got["spearman_norm"])
        if w < target:
            misses.append(f"{other['pretrained']}: local Spearman {w:+.2f} on the worst draw")
    if misses:
        return False, "not recommended (" + "; ".join(misses) + f" < {target})"
    return True, f"recommended: Spearman >= {target} on every fresh draw and every start"


def _rho(values) -> str:
    v = np.asarray(values)
    return f"{v.mean():+.2f} ± {v.std():.2f} (min {v.min():+.2f})"


def headline_consistency(play) -> list[float]:
    """Spearman of the family's headlines between every two draws: how well the headline ranks
    the family against itself on fresh primers (the most a return can be expected to match)."""
    from agents.evaluation import alignment as al

    return [al.spearman(play.headlines[i], play.headlines[j])
            for i, j in itertools.combinations(range(len(play.draws)), 2)]  # fmt: skip


def part(play, draws: tuple[int, ...]):
    """The same play restricted to some draws (the frozen normaliser kept)."""
    keep = [play.draws.index(s) for s in draws]
    return play._replace(draws=draws, headlines=play.headlines[keep], raw=play.raw[keep],
                         norm=play.norm[keep])  # fmt: skip


def measure(args: argparse.Namespace) -> dict:
    """Train (when missing), play, summarise and search: the results as a JSON-able dict."""
    import torch

    from agents.evaluation import alignment as al
    from agents.evaluation.heldout import HeldoutConfig, write_split
    from drum_env.rewards import SHAPINGS, TERMS, make_shaping

    torch.set_num_threads(1)
    start = time.perf_counter()
    players = tuple(args.heldout_players.split(",")) if args.heldout_players else None
    config = HeldoutConfig(data=args.data, heldout_players=players)
    work = Path(args.work)
    split = write_split(config, work)  # work/split/{train,heldout}
    pretrained = args.pretrained
    if pretrained is None:
        from agents.training.pretrain import PretrainConfig, pretrain

        pretrained = str(work / "pretrain" / "policy.pt")
        if not Path(pretrained).is_file():
            pretrain(PretrainConfig(
                data=str(split.train_dir), epochs=10_000, max_steps=1_500, seed=0, amp=False,
                device="cpu", out=str(work / "pretrain"), progress=False, force=True,
            ))  # fmt: skip
    ppo = {f"ppo-{s // 1024}k": train_ppo(pretrained, split.train_dir, s, work / f"ppo-{s}", 0)
           for s in _ints(args.ppo_steps)}  # fmt: skip
    trained = time.perf_counter() - start  # pretraining (when missing) and PPO
    members = family(pretrained, _floats(args.temperatures), _floats(args.top_p), ppo)
    select, fresh = tuple(_ints(args.select_seeds)), tuple(_ints(args.fresh_seeds))
    seeds = select + fresh
    local = al.play_family(members, config, episodes=args.episodes, seeds=seeds, split=split)
    reference = al.reference_players(pretrained)
    ranked = tuple(reference)
    glob = al.play_family({**reference, **al.probe_players()}, config, episodes=args.episodes,
                          seeds=seeds, split=split)  # fmt: skip

    shapings = list(al.DEFAULT_SHAPINGS)
    result = {
        "pretrained": pretrained,
        "pretrained_sha256": hashlib.sha256(Path(pretrained).read_bytes()).hexdigest(),
        "ppo": {k: str(v) for k, v in ppo.items()},
        "episodes": args.episodes, "select_seeds": select, "fresh_seeds": fresh,
        "families": local.families, "source": local.source, "terms": TERMS,
        "players": local.players, "headlines": local.headlines.tolist(),
        "term_sums_raw": local.raw.tolist(), "term_sums_norm": local.norm.tolist(),
        "headline_consistency": headline_consistency(local),
        "local": {s: al.local_summary(local, s)._asdict() for s in shapings},
        "global_players": glob.players, "global_ranked": ranked,
        "global_headlines": glob.headlines.tolist(),
        "global_term_sums_raw": glob.raw.tolist(), "global_term_sums_norm": glob.norm.tolist(),
        "global": {s: al.local_summary(glob, s, ranked)._asdict() for s in shapings},
        "recommendation": None, "searched": False,
    }  # fmt: skip
    missed = not al.local_summary(part(local, select), "aligned").aligned()
    if args.search == "always" or (args.search == "auto" and missed):
        result["searched"] = True
        grid = score_grid(local, glob, ranked)
        found = search(local, glob, ranked, grid, list(range(len(select))))
        result["split_check"] = split_check(grid, len(select))
        if found["weights"]:
            rec = make_shaping("aligned", weights=found["weights"])  # velocity terms as they are
            result["recommendation"] = {
                **{k: v for k, v in found.items() if k not in ("local", "global")},
                "grid": list(GRID), "terms_searched": list(SEARCH_TERMS),
                "select": {"local": found["local"]._asdict(),
                           "global": found["global"]._asdict()},
                "fresh": {"local": al.local_summary(part(local, fresh), rec)._asdict(),
                          "global": al.local_summary(part(glob, fresh), rec, ranked)._asdict(),
                          "real_first": real_first(part(glob, fresh), rec.weight_vector)},
                "aligned": {when: {"local": al.local_summary(part(local, d), "aligned")._asdict(),
                                   "global": al.local_summary(part(glob, d), "aligned",
                                                              ranked)._asdict()}
                            for when, d in (("select", select), ("fresh", fresh))},
                "global_rows": {p: {"headline": float(glob.headlines[:, i].mean()),
                                    "raw": float((glob.raw[:, i] @ rec.weight_vector).mean()),
                                    "norm": float((glob.norm[:, i] @ rec.weight_vector).mean())}
                                for i, p in enumerate(glob.players)},
            }  # fmt: skip
    result["other"] = []
    for k, path in enumerate(args.other_pretrained or []):
        t0 = time.perf_counter()
        other_ppo = {f"ppo-{n // 1024}k": train_ppo(path, split.train_dir, n,
                                                    work / f"other{k}-ppo-{n}", 0)
                     for n in _ints(args.ppo_steps)}  # fmt: skip
        trained += time.perf_counter() - t0
        members = family(path, _floats(args.temperatures), _floats(args.top_p), other_ppo)
        play = al.play_family(members, config, episodes=args.episodes, seeds=fresh, split=split)
        weights = {"aligned": SHAPINGS["aligned"], "sparse (song alone)": SHAPINGS["sparse"]}
        if result["recommendation"]:
            weights["found"] = make_shaping("aligned",
                                                  weights=result["recommendation"]["weights"])
        summaries = {}
        for label, shaping in weights.items():
            got = al.local_summary(play, shaping)._asdict()
            got["pooled_raw"] = al.spearman(play.raw.mean(axis=0) @ shaping.weight_vector,
                                            play.headlines.mean(axis=0))  # fmt: skip
            summaries[label] = got
        result["other"].append({"pretrained": path, "players": play.players,
                                "headlines": play.headlines.tolist(),
                                "term_sums_raw": play.raw.tolist(), "summaries": summaries})
    rec = result["recommendation"]
    if rec:
        rec["recommended"], rec["why"] = verdict(rec, result["other"])
    result["train_seconds"] = trained
    result["ppo_reused"] = list(REUSED)
    result["seconds"] = time.perf_counter() - start
    return result


def to_markdown(r: dict, name: str, command: str, groove: bool) -> str:
    """The results of :func:`measure` as markdown."""
    from agents.evaluation import alignment as al
    from drum_env.rewards import SHAPINGS, make_shaping

    seeds = (*r["select_seeds"], *r["fresh_seeds"])
    heads, raw, norm = (np.asarray(r[k]) for k in ("headlines", "term_sums_raw",
                                                    "term_sums_norm"))  # fmt: skip
    aw = SHAPINGS["aligned"].weight_vector
    md = [f"# Local alignment: {name}", "",
          f"Made by: `{command}` ({r['seconds']:.0f} s, of which {r['train_seconds']:.0f} s "
          "training" + (f"; {len(r['ppo_reused'])} PPO runs reused from an earlier call"
                        if r["ppo_reused"] else "") + ")", "",
          f"Held-out data: {r['source']}; family around `{r['pretrained']}`; {r['episodes']} "
          f"episodes x {len(seeds)} draws (seeds {', '.join(map(str, seeds))}); headline = "
          f"mean OA over {', '.join(r['families'])}. Returns: unnormalised (raw) and with one "
          "normaliser warmed on every play of the family, then frozen (norm).", "",
          "| player | headline (mean over draws) | `aligned` return raw / norm |",
          "|---|---:|---:|"]  # fmt: skip
    for i, p in enumerate(r["players"]):
        md.append(f"| {p} | {heads[:, i].mean():.3f} | {(raw[:, i] @ aw).mean():.3f} / "
                  f"{(norm[:, i] @ aw).mean():.2f} |")  # fmt: skip
    md += ["", "Spearman(mean return, headline) across the family, per draw: mean ± sd (min "
           "over draws); global: the same over the reference players of alignment_table.py. "
           "The headline against itself on another draw: "
           f"{_rho(r['headline_consistency'])} (the most a return can be expected to match).",
           "Pooled: the Spearman of the means over all draws (less noise, one number).", "",
           "| shaping | local raw | local norm | local pooled raw | global raw | global norm | "
           "most rewarded | best scored |", "|---|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for s, ls in r["local"].items():
        gs = r["global"][s]
        pooled = al.spearman(raw.mean(axis=0) @ make_shaping(s).weight_vector, heads.mean(axis=0))
        md.append(f"| `{s}` | {_rho(ls['spearman_raw'])} | {_rho(ls['spearman_norm'])} | "
                  f"{pooled:+.2f} | {_rho(gs['spearman_raw'])} | {_rho(gs['spearman_norm'])} | "
                  f"{ls['most_rewarded']} | {ls['best_scored']} |")  # fmt: skip
    md += ["", "Each term alone (its raw sum), local and global:", "",
           "| term | local | local pooled | global |", "|---|---:|---:|---:|"]  # fmt: skip
    for t, v in r["local"]["aligned"]["terms"].items():
        k = r["terms"].index(t)
        pooled = al.spearman(raw.mean(axis=0)[:, k], heads.mean(axis=0))
        md.append(f"| `{t}` | {_rho(v)} | {pooled:+.2f} | "
                  f"{_rho(r['global']['aligned']['terms'][t])} |")  # fmt: skip
    rec = r["recommendation"]
    if rec:
        md += ["", f"Weight search (grid {rec['grid']} over {', '.join(rec['terms_searched'])}: "
               f"{rec['candidates']} weightings), on the selection draws "
               f"{tuple(r['select_seeds'])} only: the best worst-draw local Spearman (then the "
               "mean draw, then nearest `aligned`) among the weightings that keep the global "
               "property there. "
               + ("It is `aligned` itself." if rec["is_default"] else
                  f"Found: `{json.dumps(rec['weights'])}` (others as in `aligned`)."),
               "", "| weights | draws | local raw | local norm | global raw | global norm |",
               "|---|---|---:|---:|---:|---:|"]  # fmt: skip
        for when in ("select", "fresh"):
            for label, got in (("`aligned`", rec["aligned"][when]), ("found", rec[when])):
                lo, gl = got["local"], got["global"]
                md.append(f"| {label} | {when} | {_rho(lo['spearman_raw'])} | "
                          f"{_rho(lo['spearman_norm'])} | {_rho(gl['spearman_raw'])} | "
                          f"{_rho(gl['spearman_norm'])} |")  # fmt: skip
        md += ["", f"Real continuation first on the fresh draws: "
               f"{'yes' if rec['fresh']['real_first'] else 'no'}. Global players under the "
               "weights found (all draws):", "",
               "| player | headline | return raw / norm |", "|---|---:|---:|"]  # fmt: skip
        for p, row in rec["global_rows"].items():
            label = p if p in r["global_ranked"] else f"({p})"
            md.append(f"| {label} | {row['headline']:.2f} | {row['raw']:.2f} / "
                      f"{row['norm']:.2f} |")  # fmt: skip
    if r.get("split_check"):
        c = r["split_check"]
        md += ["", f"The same search on every split of the {len(seeds)} draws into "
               f"{len(r['select_seeds'])} selection and {len(r['fresh_seeds'])} fresh ones "
               f"({len(c['splits'])} of {math.comb(len(seeds), len(r['select_seeds']))} splits "
               "have a weighting that keeps the global property), scored on the fresh ones: "
               "its pick "
               f"{c['fresh_mean']:+.2f} mean, {c['fresh_worst']:+.2f} worst draw (average over "
               f"the splits; worst draw >= 0.8 in {c['share_fresh_worst_ge_0.8']:.0%} of them); "
               f"`aligned` {c['aligned_fresh_mean']:+.2f} mean, {c['aligned_fresh_worst']:+.2f} "
               "worst draw."]  # fmt: skip
    for other in r.get("other", []):
        md += ["", f"Another start, `{other['pretrained']}` (its own family: the same "
               f"temperatures, top-p and PPO steps), fresh draws {tuple(r['fresh_seeds'])}:",
               "", "| weights | local raw | local norm | local pooled raw |",
               "|---|---:|---:|---:|"]  # fmt: skip
        for label, got in other["summaries"].items():
            md.append(f"| {label} | {_rho(got['spearman_raw'])} | {_rho(got['spearman_norm'])} "
                      f"| {got['pooled_raw']:+.2f} |")  # fmt: skip
    if rec:
        md += ["", f"**Verdict on the weights found: {rec['why']}.**"]
    if r["searched"] and not rec:
        md += ["", "No grid weighting ranked the family with Spearman >= 0.8 while keeping the "
               "global property."]  # fmt: skip
    if groove:
        md += ["", "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; "
               "Google Magenta), CC BY 4.0."]  # fmt: skip
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="npz folder (default: the built-in corpus)")
    parser.add_argument("--heldout-players", default=None, help="e.g. drummer8,drummer9")
    parser.add_argument("--pretrained", default=None,
                        help="policy.pt at the family's centre (default: pretrain one, 1,500 "
                             "steps, under --work)")  # fmt: skip
    parser.add_argument("--other-pretrained", action="append", default=None,
                        help="another start (repeatable): its own family, scored on the fresh "
                             "draws with aligned and the weights found")  # fmt: skip
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1,1.1,1.2,1.3,1.4")
    parser.add_argument("--top-p", default="0.8,0.9,0.95")
    parser.add_argument("--ppo-steps", default="32768,98304,196608",
                        help="PPO fine-tunings of the pretrained policy, env steps each")
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--select-seeds", default="101,202,303",
                        help="draws the weights are chosen on")
    parser.add_argument("--fresh-seeds", default="404,505,606",
                        help="draws they are reported on (fresh primers)")
    parser.add_argument("--work", default="runs/local-alignment", help="split and PPO runs")
    parser.add_argument("--search", choices=("auto", "always", "never"), default="auto",
                        help="search weights: when aligned misses 0.8 on a selection draw (auto)")
    parser.add_argument("--name", default="builtin")
    parser.add_argument("--out", default=str(HERE / "results" / "alignment"))
    args = parser.parse_args(argv)  # fmt: skip

    result = measure(args)
    command = "python benchmarks/local_alignment.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv)  # fmt: skip
    result["command"] = command
    groove = bool(args.data and "groove" in args.data.lower())
    text = to_markdown(result, args.name, command, groove)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"local-{args.name}.md").write_text(text, encoding="utf-8")
    (out / f"local-{args.name}.json").write_text(json.dumps(result, indent=1, default=str),
                                                 encoding="utf-8")  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
