"""The alignment table: does each shaping rank real drumming first, and rank players like the judge?

For every shaping, the mean return of reference players (the real continuation, the
per-position mode, loop-the-primer, the pretrained policy sampled and thresholded, random
players, silence, and probes written to game the reward) on held-out data, unnormalised and
under one normaliser warmed on a mix of the players then frozen, next to their
shaping-independent headline score, with the Spearman correlation of returns and headlines
(:func:`agents.evaluation.alignment.alignment_table`). Writes ``<out>/<name>.md`` and
``<name>.json``.

Examples::

    python benchmarks/alignment_table.py                       # the built-in corpus
    drum-env convert ../shared/data/groove-midi runs/groove-npz
    python benchmarks/alignment_table.py --data runs/groove-npz \\
        --heldout-players drummer8,drummer9 --name groove-players \\
        --pretrained runs/bench-groove-players/pretrain/seed0/run/policy.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="npz folder (default: the built-in corpus)")
    parser.add_argument("--heldout-players", default=None, help="e.g. drummer8,drummer9")
    parser.add_argument("--split-csv", default=None, help="a Groove info.csv: hold out 'test'")
    parser.add_argument("--pretrained", default=None, help="policy.pt: adds the policy players")
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--seeds", default="12345,777", help="reset seeds, one per draw")
    parser.add_argument("--name", default="builtin")
    parser.add_argument("--out", default=str(HERE / "results" / "alignment"))
    args = parser.parse_args(argv)

    import torch

    from agents.evaluation import alignment as al
    from agents.evaluation.heldout import HeldoutConfig

    torch.set_num_threads(1)
    players = args.heldout_players.split(",") if args.heldout_players else None
    config = HeldoutConfig(data=args.data, heldout_players=players, split_csv=args.split_csv)
    start = time.perf_counter()
    table = al.alignment_table(
        al.DEFAULT_SHAPINGS, config, players=al.reference_players(args.pretrained),
        probes=al.probe_players(), episodes=args.episodes,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
    )  # fmt: skip
    md = al.to_markdown(table)
    command = "python benchmarks/alignment_table.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    took = time.perf_counter() - start
    text = f"# Alignment table: {args.name}\n\nMade by: `{command}` ({took:.0f} s)\n\n{md}\n"
    if args.data and "groove" in args.data.lower():
        text += ("\nData: Groove MIDI Dataset (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019; "
                 "Google Magenta), CC BY 4.0.\n")
    (out / f"{args.name}.md").write_text(text, encoding="utf-8")
    (out / f"{args.name}.json").write_text(
        json.dumps(table._asdict() if hasattr(table, "_asdict") else str(table), default=str,
                   indent=1), encoding="utf-8")  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
