import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.benchmark import (
    AGENTS,
    CSV_COLUMNS,
    DEFAULT_SHAPINGS,
    SHAPING_NAMES,
    BenchmarkConfig,
)
from agents.evaluation.benchmark_report import PLAYERS
from agents.evaluation.benchmark_report import table as _table
from agents.evaluation.heldout import HeldoutConfig, split_indices

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "compare_shapings.py"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _smoke(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--no-progress", "--out", str(out),
         "--work", str(out / "work"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    start = time.perf_counter()
    proc = _smoke(out)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, elapsed, proc


@pytest.mark.slow
def test_smoke_runs_end_to_end_under_a_minute(smoke):
    out, elapsed, proc = smoke
    assert elapsed < 60
    for name in ("shapings.csv", "shapings.md", "shapings.png", "shapings.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "shapings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "shapings.md" in proc.stdout


@pytest.mark.slow
def test_smoke_csv_has_the_columns_and_one_final_row_per_cell(smoke):
    out, _, _ = smoke
    rows = _rows(out / "shapings.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    cells = {(r["shaping"], r["agent"], r["seed"]) for r in rows}
    assert cells == {("aligned", "ppo", "0"), ("aligned", "sb3-ppo", "0"),
                     ("any", "random", "0")}  # fmt: skip
    for cell in cells:
        mine = [r for r in rows if (r["shaping"], r["agent"], r["seed"]) == cell]
        assert [r["final"] for r in mine].count("1") == 1 and mine[-1]["final"] == "1"
        steps = [int(r["env_steps"]) for r in mine]
        assert steps == sorted(steps)
        if cell[1] != "random":  # learning curve: the initial policy, then the end
            assert steps[0] == 0 and steps[-1] >= 1024
        for r in mine:
            assert 0.0 <= float(r["headline"]) <= 1.0
            assert -1.0 <= float(r["song_raw"]) <= 0.0


@pytest.mark.slow
def test_smoke_runs_log_every_evaluation_with_takes_and_their_hparams(smoke):
    from test_run_logs import events, hparams_entry

    out, _, _ = smoke
    rows = _rows(out / "shapings.csv")
    for shaping, agent in (("aligned", "ppo"), ("aligned", "sb3-ppo"), ("any", "random")):
        mine = [r for r in rows if (r["shaping"], r["agent"]) == (shaping, agent)]
        steps = [int(r["env_steps"]) for r in mine]
        acc = events(out / "work" / "runs" / shaping / agent / "seed0" / "tb")
        # each evaluation: its headline, and the takes on held-out primers beside the real ones
        assert [e.step for e in acc.Scalars("eval/headline")] == steps
        assert [e.step for e in acc.Audio("takes/0/agent")] == steps
        assert [e.step for e in acc.Images("takes/0")] == steps
        assert [e.step for e in acc.Audio("takes/0/real")] == steps[:1]
        values, metrics = hparams_entry(acc)
        assert (values["shaping"], values["agent"], values["seed"]) == (shaping, agent, 0)
        assert "hparam/headline" in metrics and "hparam/headline_se" in metrics
        final = acc.Scalars("hparam/headline")
        assert final[0].value == pytest.approx(float(mine[-1]["headline"]), abs=1e-6)


@pytest.mark.slow
def test_smoke_markdown_marks_a_best_per_column_and_the_references(smoke):
    out, _, _ = smoke
    md = (out / "shapings.md").read_text()
    assert "**" in md and "best per column" in md
    for label in ("ceiling: real vs real", "floor: uniform random",
                  "floor: density-matched random", "floor: silence", "random agent"):  # fmt: skip
        assert label in md
    assert "--smoke" in md  # the command that made it
    assert "discriminative families" in md
    assert "Groove" not in md  # built-in corpus: no attribution line
    # one shaping per column: the only value is the best one
    table = md.split("## Final headline score")[1].split("\n\n")[1]
    cell = r"\*\*0\.\d{3} \(SE 0\.\d{3}\)\*\*"  # a mean and its standard error
    assert re.search(rf"\| aligned \| {cell} \| {cell} \|", table)
    assert re.search(r"\| ceiling: real vs real [^|]*\| 0\.\d{3} ± 0\.\d{3} \(SE 0\.\d{3}\) \|", md)


@pytest.mark.slow
def test_random_agent_is_below_the_ceiling(smoke):
    out, _, _ = smoke
    data = json.loads((out / "shapings.json").read_text())
    ceiling = data["references"]["ceiling"][0]
    random_final = data["summary"]["any"]["random"]["headline"]
    assert random_final < ceiling
    assert data["references"]["silence"][0] < ceiling
    assert set(data["discriminative"]) <= set(data["families"])


@pytest.mark.slow
def test_resume_skips_finished_cells_and_reruns_unfinished_ones(smoke, tmp_path):
    out, _, _ = smoke
    target = tmp_path / "resume"
    target.mkdir()
    for name in ("shapings.csv", "shapings.config.json"):
        (target / name).write_bytes((out / name).read_bytes())
    rows = _rows(out / "shapings.csv")
    # the sb3-ppo run was killed after its first evaluation: only a non-final row remains
    kept = [r for r in rows if r["agent"] != "sb3-ppo" or r["final"] == "0"]
    with (target / "shapings.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
    proc = _smoke(target, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _rows(target / "shapings.csv")
    finished = [r for r in rows if r["agent"] != "sb3-ppo"]
    assert after[: len(finished)] == finished  # finished cells untouched, not rerun
    redone = [r for r in after if r["agent"] == "sb3-ppo"]
    assert [r["final"] for r in redone] == [r["final"] for r in rows if r["agent"] == "sb3-ppo"]
    assert len(after) == len(rows)

    # a resume with other settings is refused, naming the field
    proc = _smoke(target, "--resume", "--total-timesteps", "2048")
    assert proc.returncode == 2 and "total_timesteps" in proc.stderr


def test_config_cells_skip_learned_sb3_and_run_random_once_per_seed():
    cfg = BenchmarkConfig(seeds=(0, 1))
    cells = cfg.cells()
    assert ("learned", "sb3-ppo", 0) not in cells and ("learned", "ppo", 1) in cells
    assert [c for c in cells if c[1] == "random"] == [("any", "random", 0), ("any", "random", 1)]
    for player in PLAYERS:  # the players that do not train run once per seed
        assert [c for c in cells if c[1] == player] == [("any", player, 0), ("any", player, 1)]
    learners = [a for a in AGENTS if a not in PLAYERS]
    assert len(cells) == 2 * (len(DEFAULT_SHAPINGS) * len(learners) - 2 + len(PLAYERS))
    assert cfg.estimated_seconds() > 0
    assert set(DEFAULT_SHAPINGS) < set(SHAPING_NAMES)
    assert not {"tuned", "hierarchical/batch", "hierarchical/epoch"} & set(cfg.shapings)


def _tuned_file(path: Path, weights: dict[str, float]) -> Path:
    from agents.training.ppo import PPOConfig

    # what agents.tune.export_best writes: every PPOConfig field
    values = PPOConfig(shaping="hierarchical", weights=weights, learning_rate=1e-3,
                       seed=7).to_dict()
    path.write_text(json.dumps(values))
    return path


def test_tuned_and_reward_norm_rows_are_custom_ppo_only(tmp_path):
    tuned = _tuned_file(tmp_path / "best_config.json", {"step": 0.25, "song": 2.0})
    cfg = BenchmarkConfig(shapings=("hierarchical", "hierarchical/batch", "hierarchical/epoch"),
                          tuned_config=str(tuned), seeds=(0,))  # fmt: skip
    assert cfg.shapings[-1] == "tuned"  # the file adds the row
    cells = cfg.cells()
    for s in ("tuned", "hierarchical/batch", "hierarchical/epoch"):
        assert (s, "ppo", 0) in cells and (s, "ppo+pretrain", 0) in cells
        assert (s, "sb3-ppo", 0) not in cells and (s, "sb3-a2c", 0) not in cells
    assert ("hierarchical", "sb3-a2c", 0) in cells
    assert cfg.reward_setup("tuned") == ("hierarchical", {"step": 0.25, "song": 2.0}, "running")
    assert cfg.reward_setup("hierarchical/batch") == ("hierarchical", None, "batch")
    assert cfg.reward_setup("hierarchical/epoch") == ("hierarchical", None, "epoch")
    assert cfg.reward_setup("learned") == ("aligned", None, "running")
    fields = cfg.result_fields()
    assert fields["tuned_config"] == str(tuned)
    assert fields["tuned_reward"] == {"shaping": "hierarchical",
                                      "weights": {"step": 0.25, "song": 2.0}}  # fmt: skip
    assert "tuned_reward" not in BenchmarkConfig().result_fields()

    cell = {"headline": 0.5, "headline_std": 0.0, "seeds": 1.0}
    table = _table({"tuned": {"ppo": cell}, "hierarchical/epoch": {"ppo": cell}},
                   ["tuned", "hierarchical/epoch"], ["ppo", "sb3-ppo"], "headline")  # fmt: skip
    assert table[2:] == ["| tuned | **0.500** | n/a |", "| hierarchical/epoch | **0.500** | n/a |"]

    with pytest.raises(ValueError, match="tuned_config"):
        BenchmarkConfig(shapings=("tuned",))
    with pytest.raises(ValueError, match="tuned_config"):
        BenchmarkConfig(tuned_config=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"shaping": "hierarchical",
                                                   "weights": {"nope": 1.0}}))  # fmt: skip
    with pytest.raises(ValueError, match="tuned_config"):
        BenchmarkConfig(tuned_config=str(tmp_path / "bad.json"))


@pytest.mark.slow
def test_smoke_with_tuned_and_batch_normalisation_rows(tmp_path):
    import torch

    tuned = _tuned_file(tmp_path / "best_config.json", {"step": 0.25, "bar": 1.5, "song": 2.0})
    out = tmp_path / "bench"
    args = ("--shapings", "hierarchical/batch,tuned", "--tuned-config", str(tuned))
    proc = _smoke(out, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(out / "shapings.csv")
    cells = {(r["shaping"], r["agent"]) for r in rows}
    assert cells == {("hierarchical/batch", "ppo"), ("tuned", "ppo"), ("any", "random")}
    md = (out / "shapings.md").read_text()
    for s in ("tuned", "hierarchical/batch"):  # only the ppo column: no sb3 cells ran
        assert re.search(rf"\| {s} \| (\*\*)?0\.\d{{3}}(\*\*)? \|\n", md), s
    assert "opt-in" in md and "step 0.25" in md and "split settings" in md
    runs = out / "work" / "runs"
    batch = torch.load(runs / "hierarchical_batch" / "ppo" / "seed0" / "checkpoint.pt",
                       weights_only=True)["config"]  # fmt: skip
    assert batch["reward_norm"] == "batch" and batch["shaping"] == "hierarchical"
    cfg = torch.load(runs / "tuned" / "ppo" / "seed0" / "checkpoint.pt",
                     weights_only=True)["config"]  # fmt: skip
    # only the reward weights come from the tuned file
    assert cfg["weights"] == {"step": 0.25, "bar": 1.5, "song": 2.0}
    assert cfg["reward_norm"] == "running" and cfg["learning_rate"] != 1e-3 and cfg["seed"] == 0
    recorded = json.loads((out / "shapings.config.json").read_text())
    assert recorded["tuned_reward"]["weights"] == cfg["weights"]

    # other tuned weights: a resume is refused, naming the field
    _tuned_file(tuned, {"step": 0.5})
    proc = _smoke(out, *args, "--resume")
    assert proc.returncode == 2 and "tuned_reward" in proc.stderr


@pytest.mark.parametrize(
    "changes, field",
    [({"shapings": ("dense",)}, "shapings"), ({"agents": ("dqn",)}, "agents"),
     ({"seeds": ()}, "seeds"), ({"total_timesteps": 100}, "total_timesteps"),
     ({"eval_episodes": 1}, "eval_episodes"), ({"heldout_fraction": 1.0}, "heldout_fraction"),
     ({"seq_len": 70}, "seq_len"), ({"prompt_bars": 4}, "prompt_bars"),
     ({"kl_coef": -1.0}, "kl_coef")],
)  # fmt: skip
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        BenchmarkConfig(**changes)


def test_presets():
    assert BenchmarkConfig.preset("quick").seeds == (0, 1)
    assert BenchmarkConfig.preset("default") == BenchmarkConfig()
    with pytest.raises(ValueError, match="budget"):
        BenchmarkConfig.preset("huge")
    cfg = BenchmarkConfig.preset("quick", seeds=(3,), total_timesteps=2048)
    assert cfg.seeds == (3,) and cfg.total_timesteps == 2048
    assert cfg.eval_points == BenchmarkConfig.preset("quick").eval_points


def test_split_is_seeded_disjoint_and_follows_a_split_csv(tmp_path):
    names = [f"d/{i}" for i in range(20)]
    cfg = HeldoutConfig(split_seed=3)
    train, held = split_indices(cfg, names)
    assert sorted(train + held) == list(range(20)) and len(held) == 5
    assert (train, held) == split_indices(BenchmarkConfig(split_seed=3), names)
    assert held != split_indices(HeldoutConfig(split_seed=4), names)[1]

    info = tmp_path / "info.csv"
    info.write_text("midi_filename,split\n" + "".join(
        f"d/{i}.mid,{'test' if i % 4 == 0 else 'train'}\n" for i in range(20)
    ))  # fmt: skip
    train, held = split_indices(HeldoutConfig(split_csv=str(info)), names)
    assert held == [0, 4, 8, 12, 16] and len(train) == 15
    with pytest.raises(ValueError, match="no midi_filename matches"):
        split_indices(HeldoutConfig(split_csv=str(info)), ["x/1"])


def test_leave_players_out_split_holds_out_whole_players():
    names = [f"drummer{p}/session{s}/take{t}" for p in (1, 3, 8) for s in (1, 2) for t in (1, 2)]
    train, held = split_indices(HeldoutConfig(heldout_players=("drummer8",)), names)
    assert {names[i].split("/")[0] for i in held} == {"drummer8"} and len(held) == 4
    assert {names[i].split("/")[0] for i in train} == {"drummer1", "drummer3"}
    # a CSV or fraction never overrides the players
    both = HeldoutConfig(heldout_players="drummer1,drummer3", heldout_fraction=0.1)
    assert both.heldout_players == ("drummer1", "drummer3")
    assert len(split_indices(both, names)[1]) == 8
    with pytest.raises(ValueError, match=r"heldout_players.*drummer9"):
        split_indices(HeldoutConfig(heldout_players=("drummer9",)), names)


def test_csv_columns_follow_the_evaluation_families():
    from dataset.evaluation import FAMILIES, VELOCITY_FAMILIES

    oa = [c[3:] for c in CSV_COLUMNS if c.startswith("oa_")]
    assert oa == [*FAMILIES, *VELOCITY_FAMILIES]
    wanted = ("env_steps", "headline", "headline_se", "velocity_headline", "song_raw", "train_s")
    assert np.all([c in CSV_COLUMNS for c in wanted])
    assert "metrical_position" in oa


def test_summary_combines_the_seeds_standard_errors_and_tables_show_them():
    from agents.evaluation.benchmark_report import fmt, summarise

    rows = [{"shaping": "aligned", "agent": "ppo", "seed": s, "env_steps": 10, "final": 1,
             "headline": h, "headline_se": se, "song_raw": -0.1, "episode_return": 0.0,
             "train_s": 1.0} for s, h, se in ((0, 0.70, 0.003), (1, 0.74, 0.004))]  # fmt: skip
    cell = summarise(rows)["aligned"]["ppo"]
    assert cell["headline"] == pytest.approx(0.72) and cell["headline_std"] == pytest.approx(0.02)
    assert cell["headline_se"] == pytest.approx(0.0025)  # sqrt(0.003^2 + 0.004^2) / 2
    assert fmt(0.72, 0.02, 2, se=0.0025) == "0.720 ± 0.020 (SE 0.003)"
    assert fmt(0.72, 0.02, 1) == "0.720"
    line = _table(summarise(rows), ["aligned"], ["ppo"], "headline", se_key="headline_se")[-1]
    assert line == "| aligned | **0.720 ± 0.020 (SE 0.003)** |"


@pytest.mark.slow
def test_players_rows_pretraining_validation_and_evaluation_draws(tmp_path):
    from agents.evaluation.benchmark import run_benchmark

    cfg = BenchmarkConfig.preset(
        "smoke", agents=("pretrained", "loop", "random"), eval_draws=2, out=str(tmp_path),
        work=str(tmp_path / "work"), progress=False, pretrain_steps=60, pretrain_patience=2,
    )  # fmt: skip
    result = run_benchmark(cfg)
    rows = _rows(tmp_path / "shapings.csv")
    assert {(r["shaping"], r["agent"]) for r in rows} == {("any", "pretrained"), ("any", "loop"),
                                                          ("any", "random")}  # fmt: skip
    assert all(r["final"] == "1" and float(r["headline_draw_std"]) >= 0 for r in rows)
    assert any(float(r["headline_draw_std"]) > 0 for r in rows)  # two draws, other primers
    pre = json.loads((tmp_path / "shapings.json").read_text())["notes"]["pretrain"]["0"]
    assert pre["val_losses"] and pre["best_val_loss"] == min(v for _, v in pre["val_losses"])
    md = result.md_path.read_text()
    assert "pretrained policy alone" in md and "loop the primer" in md
    # the pretrained policy is cached: a second run reuses it (same config, no new training)
    policy = tmp_path / "work" / "pretrain" / "seed0" / "run" / "policy.pt"
    stamp = policy.stat().st_mtime_ns
    run_benchmark(cfg)
    assert policy.stat().st_mtime_ns == stamp


def test_a_cached_run_is_the_same_wherever_its_folders_are_written_from(tmp_path, monkeypatch):
    """``--work runs/x`` and ``--work /abs/runs/x`` name one cache: the pretraining is reused."""
    from agents.evaluation.benchmark import same_run_config

    monkeypatch.chdir(tmp_path)
    wanted = {
        "data": "work/pretrain/seed0/split/train",
        "out": "work/pretrain/seed0/run",
        "val_data": str(tmp_path / "work/pretrain/seed0/split/heldout"),
        "seed": 0,
    }
    absolute = {
        **wanted,
        "data": str(tmp_path / wanted["data"]),
        "out": str(tmp_path / wanted["out"]),
        "val_data": "work/pretrain/seed0/split/heldout",
    }
    assert same_run_config(absolute, wanted) and same_run_config(wanted, wanted)
    assert not same_run_config({**absolute, "seed": 1}, wanted)
    assert not same_run_config({**absolute, "out": str(tmp_path / "elsewhere")}, wanted)
    assert not same_run_config({k: v for k, v in absolute.items() if k != "seed"}, wanted)
    assert not same_run_config(None, wanted)


@pytest.mark.slow
def test_ppo_mlp_agent_trains_the_sb3_sized_policy(tmp_path):
    import torch

    from agents.evaluation.benchmark import run_benchmark

    cfg = BenchmarkConfig.preset("smoke", agents=("ppo-mlp",), out=str(tmp_path),
                                 work=str(tmp_path / "work"), progress=False)  # fmt: skip
    run_benchmark(cfg)
    rows = _rows(tmp_path / "shapings.csv")
    assert {(r["shaping"], r["agent"]) for r in rows} == {("aligned", "ppo-mlp")}
    ckpt = tmp_path / "work" / "runs" / "aligned" / "ppo-mlp" / "seed0" / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["config"]["policy_kind"] == "mlp"


def test_write_split_copies_the_files_and_names_the_source(tmp_path):
    from agents.evaluation.heldout import write_split

    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        np.savez(data / f"s{i}.npz", sequence=np.eye(16, 9, dtype=np.float32),
                 tempo_bpm=np.float64(90 + i))  # fmt: skip
    split = write_split(HeldoutConfig(data=str(data), heldout_fraction=0.25), tmp_path / "w")
    assert split.source == f"data folder {str(data)!r}"
    name = split.heldout_names[0]
    with np.load(split.heldout_dir / f"{name}.npz") as f:
        assert float(f["tempo_bpm"]) == 90 + int(name[1:])  # what the file records is kept


@pytest.mark.slow
def test_expressive_benchmark_scores_dynamics_with_the_policies_bins(tmp_path, monkeypatch):
    """velocity_levels > 0: every row has a velocity headline, the report its section, and each
    agent is evaluated on an env that plays its classes at the bins it learned with."""
    import agents.evaluation.benchmark as bench
    from agents.policies.policy import policy_velocity_bins

    seen: dict[str, object] = {}
    original = bench._Recorder.__init__

    def spy(self, ctx, shaping, agent, seed, velocity_bins=None):
        original(self, ctx, shaping, agent, seed, velocity_bins)
        seen[agent] = self.env_kwargs["velocity_bins"]

    monkeypatch.setattr(bench._Recorder, "__init__", spy)
    cfg = BenchmarkConfig.preset(
        "smoke", agents=("ppo+pretrain", "pretrained", "loop", "random", "sb3-ppo"),
        velocity_levels=3, out=str(tmp_path), work=str(tmp_path / "work"), progress=False,
        pretrain_steps=40, pretrain_patience=2,
    )  # fmt: skip
    result = bench.run_benchmark(cfg)
    rows = _rows(tmp_path / "shapings.csv")
    assert {r["agent"] for r in rows} == set(cfg.agents)
    for r in rows:
        assert 0.0 <= float(r["velocity_headline"]) <= 1.0
    pretrained = tmp_path / "work" / "pretrain" / "seed0" / "run" / "policy.pt"
    assert seen["pretrained"] == seen["ppo+pretrain"] == policy_velocity_bins(pretrained)
    assert seen["loop"] == seen["random"] == seen["sb3-ppo"]  # the train split's bins
    md = result.md_path.read_text()
    assert "## Final velocity headline" in md and "floor: the real hits at one velocity" in md


def test_heldout_evaluation_scores_dynamics_of_the_takes(tmp_path):
    """The reference has a velocity ceiling above the hits-at-one-velocity floor, and a binary
    agent's takes (composed hits at the primer's mean velocities) are scored on dynamics."""
    from agents.evaluation.heldout import HeldoutConfig, evaluate, heldout_dataset, reference
    from agents.evaluation.rollout import loop_policy
    from dataset.synthetic import default_corpus

    for i, seq in enumerate(default_corpus()[:24]):
        np.savez(tmp_path / f"s{i:02d}.npz", sequence=seq)
    cfg = HeldoutConfig(eval_episodes=16, baseline_splits=2)
    data = heldout_dataset(cfg, tmp_path)
    ref = reference(cfg, data)
    assert ref.velocity_headline["ceiling"][0] > ref.velocity_headline["constant_velocity"][0]
    loop = loop_policy(9, cfg.context_steps, cfg.steps_per_bar)
    scores = evaluate(loop, cfg, cfg.env_kwargs(data), ref)
    assert {"velocity_headline", "oa_velocity", "oa_accent"} <= set(scores)
    assert 0.0 < scores["velocity_headline"] <= 1.0


def test_a_recording_from_before_a_setting_resumes_at_its_old_value(tmp_path):
    """A benchmark recorded before ``whole_canvas`` existed resumes as it ran (without it), and
    is refused, naming the field, if asked to resume with it."""
    from agents.evaluation import benchmark as bm
    from agents.evaluation.benchmark_report import json_default

    path = tmp_path / "shapings.config.json"
    config = BenchmarkConfig(seeds=(0,), device="cpu")  # where recordings before it trained
    recorded = json.loads(json.dumps(config.result_fields(), default=json_default))
    assert set(bm.ADDED_FIELDS) <= set(recorded)
    for name in bm.ADDED_FIELDS:
        del recorded[name]
    path.write_text(json.dumps(recorded))
    bm._check_resume(config, path)  # the old recording resumes
    with pytest.raises(ValueError, match=r"whole_canvas \(recorded False, now True\)"):
        bm._check_resume(BenchmarkConfig(seeds=(0,), device="cpu", whole_canvas=True), path)


def test_device_auto_is_recorded_as_the_device_it_picks_and_a_resume_elsewhere_is_refused(
    tmp_path, monkeypatch
):
    """``device`` is every command's ``auto``: CUDA where there is one, else the CPU (where the
    README's numbers were made). The benchmark records the device it picked, so a recording
    made on the CPU resumes there and is refused on a GPU machine, naming the field."""
    import torch

    from agents.evaluation import benchmark as bm

    assert BenchmarkConfig().device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bm._with_device(BenchmarkConfig(seeds=(0,))).device == "cpu"
    path = tmp_path / "shapings.config.json"
    config = bm._with_device(BenchmarkConfig(seeds=(0,)))
    path.write_text(json.dumps(config.result_fields(), default=str))
    bm._check_resume(config, path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_gpu = bm._with_device(BenchmarkConfig(seeds=(0,)))
    assert on_gpu.device == "cuda"
    assert bm._with_device(BenchmarkConfig(seeds=(0,), device="cuda:1")).device == "cuda:1"
    with pytest.raises(ValueError, match=r"device \(recorded 'cpu', now 'cuda'\)"):
        bm._check_resume(on_gpu, path)


def test_cuda_without_cuda_is_refused_before_any_work(tmp_path):
    """CUDA asked for on a machine without it is refused, naming the torch build, before ``out``
    or ``work`` is made."""
    import torch

    from agents.evaluation.benchmark import run_benchmark

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the refusal is for machines without it")
    out = tmp_path / "out"
    config = BenchmarkConfig(out=str(out), work=str(tmp_path / "work"), device="cuda")
    with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available \(torch "):
        run_benchmark(config)
    assert not out.exists() and not (tmp_path / "work").exists()
