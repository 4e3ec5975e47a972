"""The benchmark's vocabulary (agents, shapings, CSV columns) and its reports.

:mod:`agents.evaluation.benchmark` runs the grid; this module names its rows and columns and writes
what a reader sees: ``shapings.csv`` (one row per shaping x agent x seed x evaluation point),
``shapings.md`` (mean +- std over seeds of the final scores, best per column in bold, ceiling
and floors, the families, the command), ``shapings.png`` (learning curves and a bar chart) and
``shapings.json`` (everything).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.heldout import FAMILIES
from dataset.evaluation_velocity import VELOCITY_FAMILIES

__all__ = [
    "AGENTS", "PLAYERS", "PLAYER_LABELS", "DEFAULT_SHAPINGS", "SHAPING_NAMES", "SB3_ALGOS",
    "CUSTOM_ONLY", "PPO_AGENTS", "DISC_SUFFIX", "DISC_COEF",
    "ANY_SHAPING", "CSV_COLUMNS", "GROOVE_ATTRIBUTION", "read_csv", "write_csv", "finished",
    "summarise", "table", "markdown", "plot_curves", "write_reports", "json_default",
]  # fmt: skip

AGENTS: tuple[str, ...] = (
    "ppo", "ppo-mlp", "ppo+pretrain", "sb3-ppo", "sb3-a2c", "pretrained", "loop", "random",
)  # fmt: skip
"""Agent names, in table order: the learners, then the :data:`PLAYERS`."""
PLAYERS: tuple[str, ...] = ("pretrained", "loop", "random")
"""Agents that do not train, so do not depend on the shaping (one cell per seed, shaping
``any``): the pretrained policy alone (sampled), loop-the-primer, and a random player that hits
each drum at its training-split rate."""
PLAYER_LABELS = {
    "pretrained": "pretrained policy alone (sampled; no RL)",
    "loop": "loop the primer (repeat the step one bar earlier)",
    "random": "random agent (each drum at its training-split rate, through the env)",
}
DEFAULT_SHAPINGS: tuple[str, ...] = (
    "aligned", "sparse", "step", "bar", "hierarchical", "hierarchical-raw", "learned",
)  # fmt: skip
"""The shapings run by default: ``aligned`` (the env's default), the presets of
:data:`drum_env.SHAPINGS` before it, and ``learned``."""
SHAPING_NAMES: tuple[str, ...] = (
    *DEFAULT_SHAPINGS, "aligned-hits", "tuned", "hierarchical/batch", "hierarchical/epoch",
    "aligned+disc",
)  # fmt: skip
"""Every shaping name, in table order: :data:`DEFAULT_SHAPINGS`, then the opt-in
``aligned-hits`` (``aligned`` without the velocity terms: in the expressive env, dynamics
unrewarded), ``tuned``
(weights of a tuning run), ``hierarchical/batch``, ``hierarchical/epoch`` (the trainer's
reward normalisation per batch or per epoch instead of the env's running one) and
``aligned+disc`` (``aligned`` plus the learned discriminator's reward, ``disc_coef`` =
:data:`DISC_COEF`, :mod:`agents.training.discriminator`)."""
DISC_SUFFIX = "+disc"
"""A shaping name ending in it adds the learned discriminator's reward to its preset."""
DISC_COEF = 1.0
"""The ``disc_coef`` of the ``+disc`` rows."""
SB3_ALGOS = {"sb3-ppo": "ppo", "sb3-a2c": "a2c"}
# Shapings only the custom PPO has (learned weights, tuned weights, trainer-side normalisation,
# the learned discriminator's reward).
CUSTOM_ONLY = ("learned", "tuned", "hierarchical/batch", "hierarchical/epoch", "aligned+disc")
PPO_AGENTS = ("ppo", "ppo-mlp", "ppo+pretrain")
ANY_SHAPING = "any"  # the shaping of the shaping-independent players

CSV_COLUMNS: tuple[str, ...] = (
    "shaping", "agent", "seed", "env_steps", "final", "headline", "headline_se",
    "headline_draw_std",
    "song_raw", "episode_return", *(f"oa_{f}" for f in FAMILIES), "velocity_headline",
    *(f"oa_{f}" for f in VELOCITY_FAMILIES), "train_s", "eval_s", "wall_s",
)  # fmt: skip
"""Columns of ``shapings.csv``: ``final`` is 1 on a run's last evaluation; ``headline`` the
mean over ``eval_draws`` evaluation draws (other primers; one draw before the last point),
``headline_se`` its standard error over episodes and draws
(:func:`dataset.evaluation.headline_standard_error`) and ``headline_draw_std`` the draws'
standard deviation (0 with one draw); ``oa_<family>`` the
family's mean overlapping area (empty when the family has no feature for this data);
``velocity_headline`` the same over the velocity families (the takes' dynamics);
``train_s`` the training wall time up to that point (evaluations and pretraining excluded),
``eval_s`` the time of that evaluation, ``wall_s`` the time since the run started."""

GROOVE_ATTRIBUTION = (
    "Data: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; Google "
    "Magenta), https://magenta.tensorflow.org/datasets/groove, licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/)."
)



# ----------------------------------------------------------------------------- the csv


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of ``shapings.csv`` (typed), or ``[]`` when it does not exist."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k in CSV_COLUMNS:
                v = raw.get(k, "")
                if k in ("shaping", "agent"):
                    row[k] = v
                elif k in ("seed", "env_steps", "final"):
                    row[k] = int(v)
                else:
                    row[k] = float(v) if v not in ("", None) else math.nan
            rows.append(row)
    return rows


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], append: bool) -> None:
    """Write (or append) rows to ``shapings.csv`` with the header of :data:`CSV_COLUMNS`."""
    new = not append or not path.is_file()
    with path.open("w" if new else "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(row[k], float) and math.isnan(row[k])
                                 else row[k]) for k in CSV_COLUMNS})  # fmt: skip
        fh.flush()


def finished(rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, int]]:
    """The ``(shaping, agent, seed)`` cells whose final row is in ``rows``."""
    return {(r["shaping"], r["agent"], r["seed"]) for r in rows if r["final"]}


# ----------------------------------------------------------------------------- reports


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and std over seeds of every cell's final scores: shaping -> agent -> stats.

    ``headline_se`` is the standard error of the mean headline over the seeds that the
    evaluation alone contributes, ``sqrt(sum_s SE_s^2) / seeds`` (the seeds' evaluations are
    independent draws); ``headline_std`` is the spread over seeds (training and evaluation).
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["final"]:
            groups.setdefault((r["shaping"], r["agent"]), []).append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (shaping, agent), rs in groups.items():
        cell: dict[str, float] = {"seeds": float(len(rs))}
        oa = sorted({k for r in rs for k in r if k.startswith("oa_")} |
                    {f"oa_{f}" for f in FAMILIES})  # registered families too  # fmt: skip
        keys = ("headline", "headline_se", "headline_draw_std", "velocity_headline",
                "song_raw", "episode_return", *oa)  # fmt: skip
        for key in keys:
            values = np.array([r.get(key, math.nan) for r in rs], dtype=np.float64)
            ok = values[np.isfinite(values)]
            cell[key] = float(ok.mean()) if len(ok) else math.nan
            cell[f"{key}_std"] = float(ok.std()) if len(ok) else math.nan
        se = np.array([r.get("headline_se", math.nan) for r in rs], dtype=np.float64)
        se = se[np.isfinite(se)]
        cell["headline_se"] = float(np.sqrt(np.sum(se**2)) / len(se)) if len(se) else math.nan
        cell["train_s"] = float(np.mean([r["train_s"] for r in rs]))
        cell["env_steps"] = float(np.mean([r["env_steps"] for r in rs]))
        cell["steps_per_s"] = cell["env_steps"] / cell["train_s"] if cell["train_s"] > 0 else 0.0
        out.setdefault(shaping, {})[agent] = cell
    return out


def curves(
    rows: Sequence[Mapping[str, Any]], agent: str, x: str = "env_steps"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Learning curves of one agent: shaping -> (x, mean headline, std over seeds).

    Points are the evaluations at equal env steps; ``x`` is ``"env_steps"`` or ``"train_s"``
    (the mean training wall time of the seeds at that point).
    """
    by: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for r in rows:
        if r["agent"] == agent:
            point = by.setdefault(r["shaping"], {}).setdefault(r["env_steps"], [])
            point.append((float(r[x]), float(r["headline"])))
    out = {}
    for shaping, points in by.items():
        steps = sorted(points)
        xs = np.array([np.mean([p[0] for p in points[k]]) for k in steps])
        values = [np.array([p[1] for p in points[k]]) for k in steps]
        out[shaping] = (xs, np.array([v.mean() for v in values]),
                        np.array([v.std() for v in values]))  # fmt: skip
    return out


def fmt(mean: float, std: float, seeds: float, digits: int = 3, se: float = math.nan) -> str:
    """``mean ± std`` (the std with more than one seed), then ``(SE se)`` when ``se`` is given."""
    if not math.isfinite(mean):
        return "-"
    text = f"{mean:.{digits}f}"
    text += f" ± {std:.{digits}f}" if seeds > 1 else ""
    return text + (f" (SE {se:.{digits}f})" if math.isfinite(se) else "")


def table(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    shapings: Sequence[str],
    agents: Sequence[str],
    key: str,
    se_key: str | None = None,
) -> list[str]:
    """A markdown table: rows shapings, columns agents, the best mean per column in bold.

    With ``se_key``, each cell also shows the standard error of its mean, ``(SE x)``.
    """
    lines = ["| shaping | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    best = {}
    for a in agents:
        means = [summary[s][a][key] for s in shapings if a in summary.get(s, {})]
        means = [m for m in means if math.isfinite(m)]
        best[a] = max(means) if means else None
    for s in shapings:
        cells = []
        for a in agents:
            if a in SB3_ALGOS and s in CUSTOM_ONLY:
                cells.append("n/a")
                continue
            c = summary.get(s, {}).get(a)
            if c is None:
                cells.append("-")
                continue
            se = c.get(se_key, math.nan) if se_key else math.nan
            text = fmt(c[key], c[f"{key}_std"], c["seeds"], se=se)
            cells.append(f"**{text}**" if best[a] is not None and c[key] == best[a] else text)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def notes(config: Any, shapings: Sequence[str]) -> list[str]:
    """The report's notes on the opt-in rows (``tuned``, reward normalisation)."""
    lines = ["Notes:", ""]
    if "tuned" in shapings and config.tuned_config is not None:
        name, weights = config.tuned_reward()
        shown = ", ".join(f"{k} {v:g}" for k, v in (weights or {}).items()) or "its own"
        lines.append(f"* `tuned`: shaping `{name}` with the weights of `{config.tuned_config}` "
                     f"({shown}); every other setting as the other rows. The tuning run must "
                     "use this benchmark's split settings (data, split_csv or heldout_fraction, "
                     "split_seed) so that the held-out data stay unseen.")  # fmt: skip
    norms = [s for s in shapings if "/" in s]
    if norms:
        lines.append("* " + ", ".join(f"`{s}`" for s in norms) + ": the custom PPO normalises "
                     "each reward term over its rollout batch (`batch`) or with statistics "
                     "frozen during an iteration (`epoch`) instead of the env's running "
                     "normaliser (the other rows).")  # fmt: skip
    disc = [s for s in shapings if s.endswith(DISC_SUFFIX)]
    if disc:
        lines.append("* " + ", ".join(f"`{s}`" for s in disc) + ": the preset plus a reward "
                     "learned from data, a discriminator of the training split's continuations "
                     "against the policy's on the evaluation's features (GAIL-style; "
                     f"`disc_coef` {DISC_COEF:g}, `agents.training.discriminator`).")  # fmt: skip
    lines.append("* The rows `hierarchical/batch`, `hierarchical/epoch` (reward normalisation "
                 "per batch / per epoch), `aligned+disc` (the learned discriminator's reward) "
                 "and `tuned` are opt-in: `--shapings ...,hierarchical/batch,"
                 "hierarchical/epoch,aligned+disc`, `--tuned-config FILE`; each adds a "
                 "row of custom PPO runs, so they are not in the default list.")  # fmt: skip
    return [*lines, ""]


def _player_rows(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]], keys: Sequence[str]
) -> list[str]:
    """Table rows of the shaping-independent players: label, then ``keys``.

    Each key as mean ± std over seeds; the headline also with its standard error.
    """
    rows = []
    for player in PLAYERS:
        c = summary.get(ANY_SHAPING, {}).get(player)
        if c is not None:
            cells = " | ".join(fmt(c[k], c[f"{k}_std"], c["seeds"],
                                   se=c.get("headline_se", math.nan) if k == "headline"
                                   else math.nan) for k in keys)  # fmt: skip
            rows.append(f"| {PLAYER_LABELS[player]} | {cells} |")
    return rows


def _reference_rows(
    ref: Mapping[str, tuple[float, float]],
    labels: Mapping[str, str],
    rest: str = "",
    se: Mapping[str, float] | None = None,
) -> list[str]:
    """Table rows of the ceiling and floors present in ``ref``, then ``rest``.

    Each as mean ± std over the halvings, with its standard error when ``se`` has one.
    """
    se = se or {}
    return [f"| {label} | {fmt(*ref[key], 2, se=se.get(key, math.nan))} |{rest}"
            for key, label in labels.items() if key in ref]  # fmt: skip


def markdown(
    config: Any,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> str:
    """The ``shapings.md`` report."""
    ref = ctx_info["references"]
    shapings = [s for s in SHAPING_NAMES if s in summary]
    agents = [a for a in AGENTS if a not in PLAYERS and any(a in summary[s] for s in summary)]
    disc = ctx_info["discriminative"]
    rest = [f for f in ctx_info["families"] if f not in disc]
    lines = [
        "# Reward shapings x agents on held-out drums",
        "",
        f"Made by: `{ctx_info['command']}`",
        "",
        f"Data: {ctx_info['data']}; split: {ctx_info['train_sequences']} training and "
        f"{ctx_info['heldout_sequences']} held-out sequences ({ctx_info['split']}). Episodes: "
        f"{config.seq_len} steps ({config.prompt_bars} bar primer from the held-out split). "
        f"Budget: {config.total_timesteps:,} env steps per run, seeds "
        f"{', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}; "
        f"evaluation: {config.eval_episodes} episodes x {config.eval_draws} draw(s) at the "
        "final point (one draw before), "
        + ("windows stratified by held-out file." if config.stratify
           else "windows drawn by the env."),
        "",
        "Score: **headline** = mean overlapping area (OA) between the feature distributions "
        "of the composed part and of the held-out reference continuations, over the "
        f"discriminative families: {', '.join(disc)}"
        + (f" (reported but not averaged: {', '.join(rest)})" if rest else "")
        + ". 1 = indistinguishable from real; higher is better. **SE**: the standard error of "
        "a mean headline from the evaluation alone (a bootstrap over the episodes, "
        f"{config.eval_resamples} resamples, combined with the spread over draws; over seeds "
        "`sqrt(sum SE^2) / seeds`); ± is the spread over seeds.",
        "",
        "## Final headline score (mean ± std over seeds (SE); best per column in **bold**)",
        "",
        *table(summary, shapings, agents, "headline", se_key="headline_se"),
        "",
    ]
    custom = [s for s in shapings if s in CUSTOM_ONLY]
    if custom and any(a in SB3_ALGOS for a in agents):
        lines += [", ".join(f"`{s}`" for s in custom) + " x SB3: not applicable (learned "
                  "weights, tuned weights, the reward normalisation per batch / epoch and the "
                  "learned discriminator are part of the custom trainer); those runs are "
                  "skipped.", ""]  # fmt: skip
    lines += notes(config, shapings)
    vel_ref = ctx_info.get("velocity_references")
    if vel_ref:
        vdisc = ", ".join(ctx_info.get("velocity_discriminative", [])) or "none"
        binary = "binary env: composed hits play at the primer's per-drum mean velocity" if not \
            config.velocity_levels else f"velocity_levels {config.velocity_levels}"
        lines += [
            "## Final velocity headline (dynamics; mean ± std over seeds)",
            "",
            "The takes' velocities against the held-out players' recorded velocities: mean OA "
            f"over the discriminative velocity families ({vdisc}); {binary}.",
            "",
            *table(summary, shapings, agents, "velocity_headline"),
            "",
            "| player | velocity headline |",
            "|---|---:|",
        ]
        lines += _player_rows(summary, ("velocity_headline",))
        vnames = {"ceiling": "ceiling: real vs real", "density_random":
                  "floor: density-matched random (real velocities per drum)", "constant_velocity":
                  "floor: the real hits at one velocity", "uniform_random": "floor: uniform random",
                  "silence": "floor: silence"}  # fmt: skip
        lines += [*_reference_rows(vel_ref, vnames), ""]
    lines += [
        "## Final song term (raw, in [-1, 0]; 0 = the song features match; higher is better)",
        "",
        *table(summary, shapings, agents, "song_raw"),
        "",
        "## References (shaping-independent)",
        "",
        "| player | headline | song term |",
        "|---|---:|---:|",
    ]
    lines += _player_rows(summary, ("headline", "song_raw"))
    names = {"ceiling": "ceiling: real vs real (± spread over halvings)",
             "uniform_random": "floor: uniform random", "density_random":
             "floor: density-matched random", "silence": "floor: silence"}  # fmt: skip
    lines += _reference_rows(ref, names, " - |", ctx_info.get("reference_se"))
    lines += [
        "",
        f"Ceiling and floors: {ctx_info['baseline_windows']} held-out windows (continuations), "
        "split in two halves.",
        "",
        "## Per-family OA (final, mean over seeds)",
        "",
        "| shaping | agent | " + " | ".join(ctx_info["families"]) + " |",
        "|---|---|" + "---:|" * len(ctx_info["families"]),
    ]
    for s in [*shapings, ANY_SHAPING]:
        for a in AGENTS:
            c = summary.get(s, {}).get(a)
            if c is not None:
                vals = " | ".join(fmt(c.get(f"oa_{f}", math.nan), 0, 1, 2)
                                  for f in ctx_info["families"])  # fmt: skip
                lines.append(f"| {s} | {a} | {vals} |")
    lines += ["", "## Time", "", "| agent | mean train s per run | env steps / s |",
              "|---|---:|---:|"]  # fmt: skip
    for a in agents:
        cells = [summary[s][a] for s in summary if a in summary[s]]
        t = float(np.mean([c["train_s"] for c in cells]))
        sps = float(np.mean([c["steps_per_s"] for c in cells]))
        lines.append(f"| {a} | {t:.1f} | {sps:,.0f} |")
    total = sum(r["wall_s"] for r in rows if r["final"])
    lines += ["", f"Total wall time of the runs: {total:,.0f} s (evaluations included; "
              "pretraining excluded)."]  # fmt: skip
    if config.data and "groove" in config.data.lower():
        lines += ["", GROOVE_ATTRIBUTION]
    return "\n".join(lines) + "\n"


def plot_curves(
    path: Path,
    config: Any,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> None:
    """Draw ``shapings.png``: learning curves against env steps and wall-clock, final scores.

    Every curve has its own colour; the references (ceiling, the pretrained policy alone,
    loop-the-primer, density-matched random) are dashed grey-scale lines with a legend of
    their own outside the data.
    """
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the benchmark plot needs matplotlib: pip install drum-env") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ref = ctx_info["references"]
    shapings = [s for s in SHAPING_NAMES if s in summary]
    agents = [a for a in AGENTS if a not in PLAYERS and any(a in summary[s] for s in summary)]
    curve_agents = [a for a in ("ppo+pretrain", "ppo", "ppo-mlp", "sb3-ppo", "sb3-a2c")
                    if a in agents]  # fmt: skip
    palette = plt.get_cmap("tab10").colors
    colour = {}
    for a in curve_agents:
        for sh in shapings:
            colour[(a, sh)] = palette[len(colour) % len(palette)]
    players = summary.get(ANY_SHAPING, {})
    lines = {"ceiling (real vs real)": (ref["ceiling"][0], "black", (0, (6, 2)))}
    if "pretrained" in players:
        lines["pretrained alone"] = (players["pretrained"]["headline"], "0.35", (0, (3, 2)))
    if "loop" in players:
        lines["loop the primer"] = (players["loop"]["headline"], "0.55", (0, (1, 1.5)))
    lines["density-matched random"] = (ref["density_random"][0], "0.75", (0, (4, 1, 1, 1)))

    fig, axes = plt.subplots(1, 3, figsize=(19, 5.5))
    for ax, x, label in ((axes[0], "env_steps", "env steps"),
                         (axes[1], "train_s", "training wall-clock (s)")):  # fmt: skip
        for a in curve_agents:
            for sh, (xs, mean, std) in curves(rows, a, x).items():
                c = colour.get((a, sh), "tab:blue")
                ax.plot(xs, mean, marker="o", ms=3, color=c, label=f"{a} / {sh}")
                ax.fill_between(xs, mean - std, mean + std, color=c, alpha=0.12)
        for value, grey, ls in lines.values():
            ax.axhline(value, color=grey, ls=ls, lw=1.2)
        ax.set_xlabel(label)
        ax.set_ylabel("headline score (held-out)")
        ax.set_ylim(0, 1)
        ax.set_title(f"learning curves against {label} (mean ± std over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=7, ncol=2, loc="lower right")

    right = axes[2]
    width = 0.8 / max(1, len(agents))
    for k, a in enumerate(agents):
        xs, ys, es = [], [], []
        for g, sh in enumerate(shapings):
            c = summary.get(sh, {}).get(a)
            if c is not None:
                xs.append(g + (k - (len(agents) - 1) / 2) * width)
                ys.append(c["headline"])
                es.append(c["headline_std"])
        right.bar(xs, ys, width, yerr=es, capsize=2, label=a, color=palette[k % len(palette)])
    for value, grey, ls in lines.values():
        right.axhline(value, color=grey, ls=ls, lw=1.2)
    right.set_xticks(range(len(shapings)))
    right.set_xticklabels(shapings, rotation=20)
    right.set_ylabel("final headline score")
    right.set_ylim(0, 1)
    right.set_title(f"final score, {config.total_timesteps:,} env steps per run")
    if agents:
        right.legend(fontsize=7, loc="upper left")
    ref_handles = [Line2D([], [], color=grey, ls=ls, lw=1.2) for _, grey, ls in lines.values()]
    fig.legend(ref_handles, [f"{k}: {v[0]:.3f}" for k, v in lines.items()], title="references",
               fontsize=8, loc="center right", frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    path.chmod(0o644)


def write_reports(
    config: Any,
    ctx_info: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    notes: Mapping[str, Any],
    plot: bool,
) -> dict[str, dict[str, dict[str, float]]]:
    """Write ``shapings.md``, ``shapings.json`` (and the plot); returns the summary."""
    out = Path(config.out)
    summary = summarise(rows)
    if not summary:
        return summary
    md = out / "shapings.md"
    md.write_text(markdown(config, ctx_info, rows, summary), encoding="utf-8")
    payload = {
        "config": {k: v for k, v in dataclasses.asdict(config).items()
                   if k not in config.UNUSED_RUN_SETTINGS},
        **ctx_info, "summary": summary, "rows": list(rows), "notes": dict(notes),
    }  # fmt: skip
    (out / "shapings.json").write_text(
        json.dumps(payload, indent=1, default=json_default, allow_nan=True), encoding="utf-8"
    )
    if plot:
        plot_curves(out / "shapings.png", config, ctx_info, rows, summary)
    return summary


def json_default(obj: Any) -> Any:
    """``json.dumps``' ``default`` for numpy scalars, arrays, tuples and paths."""
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
