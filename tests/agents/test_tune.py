"""Tests of agents/tune.py: config, storage errors, clash checks, pruning, failures, resume, export,
the command line, and two workers sharing one study on PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest

import agents.tune as tune
from agents.storage import open_storage
from agents.training.ppo import PPOConfig
from agents.tune import TuneConfig, export_best, open_study, run_study
from drum_env.rewards import TERMS

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("DRUM_ENV_TEST_POSTGRES_URL")
HAS_PSYCOPG2 = any(importlib.util.find_spec(m) is not None for m in ("psycopg", "psycopg2"))

# 2 PPO iterations of 4 x 32 env steps, a 16-wide one-layer model, 4 validation episodes
TINY = dict(
    total_timesteps=256, eval_every=256, num_envs=4, num_steps=32, num_minibatches=2, seq_len=32,
    context_steps=16, n_layers=1, n_heads=2, d_model_choices=(16,), eval_episodes=4, threads=1,
    progress=False, heartbeat_s=None,
)  # fmt: skip


def tiny(tmp_path: Path, **changes) -> TuneConfig:
    return TuneConfig(**{**TINY, "out": str(tmp_path / "tune"), **changes})


def states(study) -> dict[int, str]:
    return {t.number: t.state.name for t in study.get_trials()}


def fake_score(headline):
    """A stand-in for the validation evaluation: ``headline(seed)`` or raise."""

    def score(data, policy, seed):
        value = headline(seed)
        if isinstance(value, Exception):
            raise value
        return {"headline": value, "song_raw": -0.5, "episode_return": 0.0}

    return score


def fake_objective(value):
    """A stand-in for the whole trial (no training) that records a PPO config like the real."""

    def objective(trial, config, data):
        params = tune.suggest(trial, config, data)
        cfg = config.ppo_config(params, config.seed + trial.number)
        trial.set_user_attr("ppo_config", cfg.to_dict())
        result = value(trial.number)
        if isinstance(result, Exception):
            raise result
        return result

    return objective


# ----------------------------------------------------------------------------- config


def test_budget_zero_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"^total_timesteps must be an integer >= 1"):
        tiny(tmp_path, total_timesteps=0)
    with pytest.raises(ValueError, match=r"total_timesteps=64 env steps is less than one PPO"):
        tiny(tmp_path, total_timesteps=64)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (dict(pruner="bogus"), "pruner"),
        (dict(lr_low=1e-2, lr_high=1e-3), "lr_low"),
        (dict(weight_low=-1.0), "weight_low"),
        (dict(dropout_high=1.0), "dropout_high"),
        (dict(ent_coef_low=0.0), "ent_coef_low"),
        (dict(kl_coef_low=2.0), "kl_coef_low"),
        (dict(d_model_choices=(15,)), "d_model_choices"),
        (dict(d_model_choices=()), "d_model_choices"),
        (dict(n_trials=None, timeout=None), "n_trials"),
        (dict(n_trials=-1), "n_trials"),
        (dict(timeout=0), "timeout"),
        (dict(weight_terms=("nope",)), "weight_terms"),
        (dict(study_name="a/b"), "study_name"),
        (dict(eval_every=0), "eval_every"),
        (dict(eval_episodes=1), "eval_episodes"),
        (dict(heldout_fraction=1.0), "heldout_fraction"),
        (dict(shaping="nope"), "shaping"),
        (dict(num_minibatches=3), "num_minibatches"),
        (dict(heartbeat_s=0), "heartbeat_s"),
    ],
)
def test_bad_config_names_the_field(tmp_path, changes, field):
    with pytest.raises(ValueError, match=field):
        tiny(tmp_path, **changes)


def test_defaults_and_derived_values(tmp_path):
    cfg = TuneConfig()
    assert cfg.storage is None and cfg.storage_url == "sqlite:///runs/tune/drum-env.db"
    assert cfg.weight_terms == TERMS
    assert cfg.best_config_path == Path("runs/tune/drum-env/best_config.json")
    assert cfg.batch_size == cfg.num_envs * cfg.num_steps
    assert cfg.iterations == cfg.total_timesteps // cfg.batch_size
    space = cfg.search_space()
    assert space["kl_coef"] is None and space["d_model"] == [32, 64, 128]
    assert all(d % cfg.n_heads == 0 for d in cfg.d_model_choices)
    c = tiny(tmp_path, eval_every=1, weight_terms=("song", "step"))
    assert c.eval_iterations == 1 and c.weight_terms == ("step", "song")  # TERMS order
    params = {"w_step": 0.5, "w_song": 2.0, "lr": 1e-4, "dropout": 0.1, "d_model": 16,
              "ent_coef": 0.01}  # fmt: skip
    ppo = c.ppo_config(params, seed=7)
    assert ppo.weight_mapping == {"step": 0.5, "song": 2.0}
    assert (ppo.learning_rate, ppo.dropout, ppo.d_model, ppo.ent_coef, ppo.kl_coef) == (
        1e-4, 0.1, 16, 0.01, 0.0
    )  # fmt: skip
    assert (ppo.seed, ppo.total_timesteps, ppo.num_envs) == (7, 256, 4)


# ----------------------------------------------------------------------------- storage


NO_DRIVER = "no PostgreSQL driver (psycopg): pip install 'drum-env[postgres]'"


@pytest.mark.skipif(not HAS_PSYCOPG2, reason=NO_DRIVER)
def test_unreachable_postgres_url_is_named_without_its_password(tmp_path):
    cfg = tiny(tmp_path, storage="postgresql://drumenv:secret@127.0.0.1:1/x", n_trials=0)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot reach the Optuna storage") as info:
        run_study(cfg)
    assert "127.0.0.1:1/x" in str(info.value) and "secret" not in str(info.value)
    assert time.perf_counter() - start < 15


def test_unopenable_sqlite_file_and_bad_url_are_clear_errors(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "s.db"
    with pytest.raises(ConnectionError, match=str(missing)):
        run_study(tiny(tmp_path, storage=f"sqlite:///{missing}", n_trials=0))
    with pytest.raises(ValueError, match="not a database URL"):
        run_study(tiny(tmp_path, storage="no url at all", n_trials=0))


def test_study_clash_resume_and_missing_study_are_clear_errors(tmp_path):
    cfg = tiny(tmp_path, n_trials=0)
    result = run_study(cfg)  # creates the study, runs nothing
    assert result.trials_run == 0 and result.best_trial is None
    assert result.study.user_attrs["search_space"] == json.loads(json.dumps(cfg.search_space()))
    assert (tmp_path / "tune" / "drum-env.db").is_file()
    with pytest.raises(ValueError, match=r"already exists.*pass --resume"):
        run_study(cfg)
    with pytest.raises(ValueError, match=r"--resume: no study 'other'.*without --resume"):
        run_study(tiny(tmp_path, n_trials=0, resume=True, study_name="other"))
    with pytest.raises(ValueError, match=r"different search space: lr: stored \[1e-05, 0\.001\], "
                                         r"given \[1e-05, 0\.01\]"):  # fmt: skip
        run_study(tiny(tmp_path, n_trials=0, resume=True, lr_high=1e-2))
    with pytest.raises(ValueError, match=r"different search space: weight_terms"):
        run_study(tiny(tmp_path, n_trials=0, resume=True, weight_terms=("song",)))
    with pytest.raises(ValueError,
                       match=r"different objective settings: total_timesteps: stored 256"):
        run_study(tiny(tmp_path, n_trials=0, resume=True, total_timesteps=512))
    # paths, threads and pruner may differ between workers
    run_study(tiny(tmp_path, n_trials=0, resume=True, threads=2, pruner="hyperband"))
    with pytest.raises(ValueError, match="no completed trial"):
        export_best(cfg)


def test_pruners_are_selectable(tmp_path):
    assert isinstance(tune.make_pruner(tiny(tmp_path)), optuna.pruners.MedianPruner)
    hb = tune.make_pruner(tiny(tmp_path, pruner="hyperband", total_timesteps=1024, eval_every=256))
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert (hb._min_resource, hb._max_resource) == (256, 1024)
    assert isinstance(tune.make_pruner(tiny(tmp_path, pruner="none")), optuna.pruners.NopPruner)


# ----------------------------------------------------------------------------- trials


@pytest.mark.slow
def test_tiny_study_completes_reports_exports_and_repeats(tmp_path):
    cfg = tiny(tmp_path, n_trials=2, d_model_choices=(16, 32))
    result = run_study(cfg)
    study = result.study
    assert states(study) == {0: "COMPLETE", 1: "COMPLETE"}
    assert (result.trials_run, result.complete, result.pruned, result.failed) == (2, 2, 0, 0)
    for t in study.trials:
        assert 0.0 <= t.value <= 1.0
        assert t.intermediate_values == {256: t.value}  # eval_every = budget: the final only
        assert set(t.params) == {f"w_{k}" for k in TERMS} | {"lr", "dropout", "d_model",
                                                             "ent_coef"}  # fmt: skip
        assert all(0.0 <= t.params[f"w_{k}"] <= 2.0 for k in TERMS)
        assert 1e-5 <= t.params["lr"] <= 1e-3 and t.params["d_model"] in (16, 32)
        assert t.user_attrs["seed"] == t.number and t.user_attrs["env_steps"] == 256
        assert -1.0 <= t.user_attrs["validation_song_raw"] <= 0.0
        run_dir = Path(t.user_attrs["run_dir"])
        assert (run_dir / "policy.pt").is_file() and not (run_dir / "checkpoint.pt").exists()

    # the best config loads as a PPOConfig, as `drum-env train --config FILE` does
    assert result.best_config_path == cfg.best_config_path and result.best_config_path.is_file()
    best = study.best_trial
    assert result.best_trial == best.number and result.best_value == best.value
    loaded = json.loads(result.best_config_path.read_text())
    ppo = PPOConfig(**loaded)
    assert ppo.weight_mapping == {k: best.params[f"w_{k}"] for k in TERMS}
    assert (ppo.learning_rate, ppo.d_model, ppo.seed) == (best.params["lr"], best.params["d_model"],
                                               best.number)  # fmt: skip
    assert ppo.data is None and ppo.total_timesteps == 256 and not ppo.resume
    assert ppo.out == "runs/tuned/drum-env" and ppo.kl_coef == 0.0
    again = export_best(study, tmp_path / "x" / "best.json")
    assert json.loads(again.read_text()) == loaded
    assert not list((tmp_path / "tune" / "drum-env").glob("split-*"))  # worker folder removed

    # same config, same sampler seed: trial 0 repeats exactly
    other = run_study(tiny(tmp_path / "again", n_trials=1, d_model_choices=(16, 32)))
    t0, u0 = study.trials[0], other.study.trials[0]
    assert u0.params == t0.params and u0.value == t0.value


@pytest.mark.slow
def test_poor_trial_is_pruned_early(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "validation_score", fake_score(lambda seed: 0.9 if seed == 0
                                                             else 0.1))  # fmt: skip
    cfg = tiny(tmp_path, n_trials=2, total_timesteps=384, eval_every=128, pruner_startup_trials=1)
    result = run_study(cfg)
    study = result.study
    assert states(study) == {0: "COMPLETE", 1: "PRUNED"}
    t0, t1 = study.trials
    assert t0.intermediate_values == {128: 0.9, 256: 0.9, 384: 0.9}
    assert t1.intermediate_values == {128: 0.1}  # stopped at its first report
    assert "env_steps" not in t1.user_attrs
    assert (result.complete, result.pruned, result.best_trial) == (1, 1, 0)


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "validation_score", fake_score(
        lambda seed: RuntimeError("boom in evaluation") if seed == 0 else 0.5))  # fmt: skip
    result = run_study(tiny(tmp_path, n_trials=2, total_timesteps=256, eval_every=128))
    study = result.study
    assert states(study) == {0: "FAIL", 1: "COMPLETE"}
    assert study.trials[0].user_attrs["error"] == "RuntimeError: boom in evaluation"
    assert study.trials[1].value == 0.5 and study.best_trial.number == 1
    assert (result.failed, result.complete, result.stopped) == (1, 1, None)
    assert result.best_config_path.is_file()


@pytest.mark.slow
def test_pretrained_policy_fixes_the_width_and_turns_on_the_kl_search(tmp_path, monkeypatch):
    import gymnasium as gym
    import torch

    from agents.policies.policy import DrumPolicy, PolicyConfig, save_policy

    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, context_steps=16)
    pcfg = PolicyConfig.from_env_config(env.unwrapped.config, d_model=8, n_layers=1, n_heads=2)
    env.close()
    torch.manual_seed(0)
    policy_file = save_policy(tmp_path / "pre.pt", DrumPolicy(pcfg))
    monkeypatch.setattr(tune, "validation_score", fake_score(lambda seed: 0.5))
    cfg = tiny(tmp_path, n_trials=1, total_timesteps=128, eval_every=128,
               pretrained=str(policy_file))
    assert cfg.search_space()["d_model"] is None and cfg.search_space()["kl_coef"] == [1e-3, 1.0]
    result = run_study(cfg)
    (trial,) = result.study.trials
    assert trial.state.name == "COMPLETE"
    assert "d_model" not in trial.params and 1e-3 <= trial.params["kl_coef"] <= 1.0
    ppo = PPOConfig(**json.loads(result.best_config_path.read_text()))
    assert (ppo.d_model, ppo.kl_coef, ppo.pretrained) == (8, trial.params["kl_coef"],
                                                          str(policy_file))  # fmt: skip
    # the same study without the policy file is a different search space
    with pytest.raises(ValueError, match=r"different search space: d_model: stored None"):
        run_study(tiny(tmp_path, n_trials=0, total_timesteps=128, eval_every=128, resume=True))


def test_repeated_failures_stop_the_worker_without_touching_the_study(tmp_path, monkeypatch):
    values = {0: 0.3}
    monkeypatch.setattr(tune, "objective", fake_objective(
        lambda n: values.get(n, ValueError(f"bad trial {n}"))))  # fmt: skip
    first = run_study(tiny(tmp_path, n_trials=1))
    assert states(first.study) == {0: "COMPLETE"}
    result = run_study(tiny(tmp_path, n_trials=10, resume=True, max_failures=2))
    assert result.trials_run == 2 and "2 trials in a row failed" in result.stopped
    assert states(result.study) == {0: "COMPLETE", 1: "FAIL", 2: "FAIL"}
    assert result.best_trial == 0 and result.best_value == 0.3


@pytest.mark.slow
def test_resume_continues_the_numbering(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "validation_score", fake_score(lambda seed: 0.1 * (seed + 1)))
    cfg = tiny(tmp_path, n_trials=1, total_timesteps=128, eval_every=128)
    first = run_study(cfg)
    assert states(first.study) == {0: "COMPLETE"}
    result = run_study(tiny(tmp_path, n_trials=1, total_timesteps=128, eval_every=128, resume=True))
    assert result.trials_run == 1 and states(result.study) == {0: "COMPLETE", 1: "COMPLETE"}
    t1 = result.study.trials[1]
    assert t1.user_attrs["seed"] == 1 and t1.value == pytest.approx(0.2)
    assert result.best_trial == 1
    assert json.loads(cfg.best_config_path.read_text())["seed"] == 1


def test_a_dead_workers_trial_is_failed_by_the_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "objective", fake_objective(lambda n: 0.4))
    cfg = tiny(tmp_path, n_trials=0, heartbeat_s=1)
    run_study(cfg)
    study = open_study(tiny(tmp_path, n_trials=0, heartbeat_s=1, resume=True))
    with pytest.warns(UserWarning, match="Heartbeat"):
        orphan = study.ask()  # a worker that started a trial and died
    study._storage.record_heartbeat(orphan._trial_id)
    time.sleep(3.5)  # past the grace period (2 heartbeats), with room for a loaded machine
    result = run_study(tiny(tmp_path, n_trials=1, heartbeat_s=1, resume=True))
    assert states(result.study) == {0: "FAIL", 1: "COMPLETE"}


# ----------------------------------------------------------------------------- command line


def test_command_line_creates_resumes_and_reports_bad_input(tmp_path, capsys, monkeypatch):
    from agents.cli import main

    monkeypatch.setattr(tune, "objective", fake_objective(lambda n: 0.25))
    out = str(tmp_path / "cli")
    small = ["tune", "--out", out, "--total-timesteps", "256", "--num-envs", "4",
             "--num-steps", "32", "--num-minibatches", "2", "--seq-len", "32", "--n-layers", "1",
             "--n-heads", "2", "--d-model-choices", "16,32", "--eval-episodes", "4",
             "--no-progress", "--heartbeat-s", "none"]  # fmt: skip
    assert main([*small, "--total-timesteps", "0"]) == 2
    assert "total_timesteps must be" in capsys.readouterr().err
    assert main([*small, "--n-trials", "1", "--resume"]) == 2
    assert "no study 'drum-env'" in capsys.readouterr().err
    assert main([*small, "--n-trials", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 trial(s) run now" in printed and "drum-env train --config" in printed
    assert "optuna-dashboard 'sqlite:///" in printed
    assert main([*small, "--n-trials", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*small, "--n-trials", "1", "--resume", "--lr-high", "0.01"]) == 2
    assert "different search space: lr" in capsys.readouterr().err
    assert main([*small, "--n-trials", "0", "--resume", "--best-config",
                 str(tmp_path / "b.json")]) == 0  # fmt: skip
    assert PPOConfig(**json.loads((tmp_path / "b.json").read_text())).d_model in (16, 32)


# ----------------------------------------------------------------------------- PostgreSQL

_WORKER = textwrap.dedent(
    """
    import json, sys
    from agents.tune import TuneConfig, run_study
    result = run_study(TuneConfig(**json.loads(sys.argv[1])))
    print("RAN", result.trials_run, result.stopped)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(
    POSTGRES_URL is None,
    reason="DRUM_ENV_TEST_POSTGRES_URL unset: start a server with scripts/start_postgres.sh "
    "(.ci/run does) and export the URL it prints",
)
@pytest.mark.skipif(not HAS_PSYCOPG2, reason=NO_DRIVER)
def test_two_workers_share_one_postgres_study(tmp_path):
    name = f"test-two-workers-{uuid.uuid4().hex[:10]}"
    base = {**TINY, "storage": POSTGRES_URL, "study_name": name, "out": str(tmp_path / "tune")}
    created = run_study(TuneConfig(**{**base, "n_trials": 0}))
    assert created.storage.startswith("postgresql://drumenv:***@")
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER,
                    json.dumps({**base, "resume": True, "n_trials": 2, "sampler_seed": seed}),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for seed in (1, 2)
        ]
        outputs = [p.communicate(timeout=240) for p in procs]
        for p, (stdout, stderr) in zip(procs, outputs):
            assert p.returncode == 0, stderr[-3000:]
            assert "RAN 2 None" in stdout
        storage = open_storage(TuneConfig(**base).storage_url)  # picks the installed driver
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials()
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # every trial recorded once
        assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
        assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
        assert len({t.user_attrs["seed"] for t in trials}) == 4
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(TuneConfig(**base).storage_url))
