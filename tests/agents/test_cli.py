"""The ``drum-env`` command line: help, errors, --config, run folders, the commands end to end."""

import dataclasses
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import COMMANDS, CONFIGS, clean_doc, config_class, main, parse_config
from drum_env.rewards import SHAPINGS

TINY_TRAIN = ["--total-timesteps", "512", "--num-envs", "16", "--num-steps", "32", "--seq-len",
              "32", "--no-tensorboard", "--no-progress"]  # fmt: skip


def _help_entries(text: str) -> dict[str, str]:
    """Map each option string / positional of a tyro help text to its help, one line."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.startswith(("│ ", "  ")):  # a box's row (a terminal) or an indented row
            current = []
            continue
        content = line[2:].rstrip().rstrip("│").rstrip()
        if content and not content.startswith(" "):
            m = re.match(r"^(\S.*?)(?:\s{2,}(\S.*))?$", content)
            current = [n.split()[0] for n in m.group(1).split(", ")]
            for n in current:
                entries[n] = m.group(2) or ""
        elif content and current:
            for n in current:
                entries[n] = (entries[n] + " " + content.strip()).strip()
    return entries


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny PPO run made by `drum-env train`."""
    out = tmp_path_factory.mktemp("cli") / "ppo"
    assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 0
    return out


def _one_error_line(capsys, command):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    prefix = f"drum-env {command}: error: " if command else "drum-env: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert "usage:" not in captured.err and "Traceback" not in captured.err
    return lines[0]


# ----------------------------------------------------------------------------- version, help


def test_version_of_the_installed_command():
    exe = Path(sys.executable).parent / "drum-env"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.strip() == f"drum-env {importlib.metadata.version('drum-env')}"


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_help_explains_every_option(command, capsys, wide):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    entries = _help_entries(out)
    positional = COMMANDS[command].positional
    for f in dataclasses.fields(config_class(command)):
        if (command, f.name) == ("benchmark", "command"):  # filled in with the command line
            assert "--command" not in entries
            continue
        key = f.name.upper() if f.name in positional else "--" + f.name.replace("_", "-")
        assert key in entries, f"{key} missing from `drum-env {command} --help`"
        sentence = re.sub(r"\((default: .*|required)\)$", "", entries[key])
        sentence = re.sub(r"(Each one|One) of: .*$", "", sentence).strip()
        assert len(re.findall(r"[A-Za-z]{2,}", sentence)) >= 2, (key, entries[key])
        assert "``" not in sentence and ":class:" not in sentence, (key, sentence)
        if f.name not in positional:
            assert "(default: " in entries[key], (key, entries[key])
    assert "--config FILE.json" in " ".join(out.split())


@pytest.mark.parametrize(("command", "option", "values"), [
    ("train", "--shaping", ", ".join(SHAPINGS)),
    ("train", "--reward-norm", "running, batch, epoch"),
    ("train", "--device", "auto, cpu, cuda, cuda:N"),
    ("baseline", "--algo", "ppo, a2c"),
    ("benchmark", "--agents",
     "ppo, ppo-mlp, ppo+pretrain, sb3-ppo, sb3-a2c, pretrained, loop, random"),
    ("tune", "--pruner", "median, hyperband, none"),
])  # fmt: skip
def test_help_lists_the_allowed_values(command, option, values, capsys, wide):
    assert main([command, "--help"]) == 0
    assert f"of: {values}." in _help_entries(capsys.readouterr().out)[option]


@pytest.mark.parametrize("command", ["convert", "stats"])
def test_data_commands_help(command, capsys, wide):
    assert main([command, "--help"]) == 0
    entries = _help_entries(capsys.readouterr().out)
    assert all(text for name, text in entries.items()), entries


def test_top_level_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("convert", "stats", *CONFIGS))


def test_docstrings_are_read_from_the_declaring_class(capsys, wide):
    assert main(["train", "--help"]) == 0
    docs = _help_entries(capsys.readouterr().out)
    assert docs["--seq-len"].startswith("Steps of an episode's window")  # from TaskConfig
    assert docs["--shaping"].startswith("Reward shaping, a name of drum_env.SHAPINGS;")
    assert "``" not in docs["--shaping"] and "drum_env.rewards.DEFAULT_SHAPING" in docs["--shaping"]
    assert main(["generate", "--help"]) == 0
    assert "unnormalised by default" in _help_entries(capsys.readouterr().out)["--shaping"]
    assert clean_doc(":class:`~agents.ppo.PPOConfig` and :data:`AGENTS`") == "PPOConfig and AGENTS"


def test_generate_help_names_every_policy_file_and_the_wav(capsys, wide):
    # the three kinds load_any_policy reads; --wav adds a take{i}.wav
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    policy = _help_entries(out)["POLICY"]
    assert all(kind in policy for kind in ("policy.pt", "checkpoint.pt", "model.zip")), policy
    assert ".wav with --wav" in " ".join(out.split())
    assert "take{i}.wav" in _help_entries(out)["--wav"]


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(("argv", "named"), [
    (["frobnicate"], "COMMAND"),
    (["convert"], "MIDI_DIR"),
    (["convert", "a", "b", "--pitch-table", "gm"], "--pitch-table"),
    (["stats", "--seq-len", "long"], "--seq-len"),
    (["pretrain", "--epochs", "2.5"], "--epochs"),
    (["train", "--bogus"], "--bogus"),
    (["train", "--shaping", "dense"], "--shaping"),
    (["train", "--reward-norm", "global"], "--reward-norm"),
    (["train", "--device", "gpu"], "device"),
    (["train", "--seq-len"], "--seq-len"),
    (["train", "--total", "512"], "--total"),  # no abbreviations
    (["baseline", "--algo", "dqn"], "--algo"),
    (["baseline", "--extra", "{oops"], "--extra"),
    (["generate"], "POLICY"),
    (["generate", "p.pt", "--num", "many"], "--num"),
    (["benchmark", "--shapings", "sparse,dense"], "shapings"),
    (["benchmark", "--agents", "dqn"], "agents"),
    (["train", "--normalize", "maybe"], "--normalize"),
    (["benchmark", "--seeds"], "--seeds"),
    (["benchmark", "--smoke", "--quick"], "--quick"),
    (["tune", "--pruner", "asha"], "--pruner"),
    (["tune", "--n-trials", "some"], "--n-trials"),
])  # fmt: skip
def test_a_bad_argument_is_one_line_and_status_2(argv, named, capsys):
    assert main(argv) == 2
    line = _one_error_line(capsys, argv[0] if argv[0] in COMMANDS else "")
    assert named in line


@pytest.mark.parametrize(("argv", "named"), [
    (["train", "--seq-len", "30"], "seq_len"),
    (["train", "--learning-rate", "-1"], "learning_rate"),
    (["train", "--weights", "stepp=1"], "stepp"),
    (["pretrain", "--dropout", "1.5"], "dropout"),
    (["generate", "missing.pt"], "missing.pt"),
    (["tune", "--n-trials", "none", "--timeout", "none"], "n_trials"),
])  # fmt: skip
def test_a_value_the_config_refuses_is_one_line_and_status_2(argv, named, capsys):
    assert main(argv) == 2
    assert named in _one_error_line(capsys, argv[0])


def test_interrupt_is_status_130(monkeypatch, capsys):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("agents.training.ppo.train", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err.strip() == "drum-env train: interrupted"


# ----------------------------------------------------------------------------- --config


@pytest.mark.parametrize(("content", "said"), [
    (b"null", "got null"),
    (b'[{"learning_rate": 1}]', "got a list"),
    (b'{"learning_rate": 1e-3, "lr": 1, "budget": 5}', "unknown key(s) ['budget', 'lr']"),
    (b'{"seq_len": 32, "data": "caf\xe9"}', "not UTF-8"),
    (b"{seq_len: 32}", "not valid JSON"),
])  # fmt: skip
def test_a_bad_config_file_is_named(tmp_path, capsys, content, said):
    path = tmp_path / "bad config.json"
    path.write_bytes(content)
    assert main(["train", "--config", str(path)]) == 2
    line = _one_error_line(capsys, "train")
    assert str(path) in line and said in line


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert main(["tune", "--config", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in _one_error_line(capsys, "tune")


def test_options_override_the_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"seq_len": 32, "shaping": "sparse", "weights": {"step": 0.5},
                                "sections": [[0, 16], [16, 32]], "num_envs": 4}))  # fmt: skip
    cfg = parse_config(["train", "--config", str(path), "--num-envs", "8", "--out", "x"])
    assert (cfg.seq_len, cfg.shaping, cfg.num_envs, cfg.out) == (32, "sparse", 8, "x")
    assert cfg.weights == (("step", 0.5),) and cfg.sections == ((0, 16), (16, 32))
    assert cfg.learning_rate == 3e-4  # the config's own default


def test_a_saved_config_json_is_a_valid_config_file(run_dir):
    cfg = parse_config(["train", "--config", str(run_dir / "config.json")])
    assert cfg.seq_len == 32 and cfg.total_timesteps == 512 and cfg.tensorboard is False


# ----------------------------------------------------------------------------- option values


def test_list_mapping_optional_and_bool_values():
    for seeds in (["0,1"], ["0", "1"], ["[0, 1]"]):
        cfg = parse_config(["benchmark", "--seeds", *seeds, "--shapings", "sparse,bar"])
        assert cfg.seeds == (0, 1) and cfg.shapings == ("sparse", "bar")
    cfg = parse_config(["benchmark", "--smoke", "--tuned-config", "none", "--no-progress"])
    assert cfg.seeds == (0,) and cfg.progress is False and cfg.tuned_config is None
    assert cfg.command == "drum-env benchmark --smoke --tuned-config none --no-progress"
    cfg = parse_config(["train", "--weights", "step=0.5,bar=1", "--target-kl", "0.02"])
    assert cfg.weight_mapping == {"step": 0.5, "bar": 1.0} and cfg.target_kl == 0.02
    cfg = parse_config(["train", "--weights", '{"song": 2}', "--target-kl", "none"])
    assert cfg.weight_mapping == {"song": 2.0} and cfg.target_kl is None
    cfg = parse_config(["baseline", "--extra", '{"gae_lambda": 0.9}'])
    assert cfg.extra == {"gae_lambda": 0.9}
    cfg = parse_config(["tune", "--weight-terms", "step,song", "--d-model-choices", "32", "64"])
    assert cfg.weight_terms == ("step", "song") and cfg.d_model_choices == (32, 64)
    cfg = parse_config(["train", "--device", "cuda:1", "--normalize"])
    assert cfg.device == "cuda:1" and cfg.normalize is True
    assert parse_config(["train", "--no-normalize"]).normalize is False
    assert parse_config(["train", "--normalize", "none"]).normalize is None
    cfg = parse_config(["benchmark", "--tuned", "none", "--heldout-players", "drummer8,drummer9"])
    assert cfg.tuned_config is None and cfg.heldout_players == ("drummer8", "drummer9")
    cfg = parse_config(["train", "--sections", "[[0, 16], [16, 64]]"])
    assert cfg.sections == ((0, 16), (16, 64))


def test_the_same_setting_has_the_same_option_everywhere(capsys, wide):
    shared = ["--data", "--seq-len", "--steps-per-bar", "--prompt-bars", "--shaping", "--weights"]
    for command in CONFIGS:
        assert main([command, "--help"]) == 0
        entries = _help_entries(capsys.readouterr().out)
        assert all(option in entries for option in shared), command


# ----------------------------------------------------------------------------- runs


def test_train_writes_config_json_and_refuses_to_mix_runs(run_dir, capsys):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seq_len"] == 32 and config["num_envs"] == 16 and config["out"] == str(run_dir)
    capsys.readouterr()
    assert main(["train", *TINY_TRAIN, "--out", str(run_dir)]) == 2
    line = _one_error_line(capsys, "train")
    assert str(run_dir) in line and "--resume" in line and "--force" in line
    assert main(["train", *TINY_TRAIN, "--seed", "1", "--out", str(run_dir), "--force"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 1


def test_baseline_task_settings_reach_the_env(tmp_path):
    out = tmp_path / "sb3"
    argv = ["baseline", "--steps-per-bar", "12", "--seq-len", "48", "--total-timesteps", "64",
            "--num-envs", "2", "--num-steps", "32", "--eval-every", "0", "--no-tensorboard",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["steps_per_bar"], config["seq_len"]) == (12, 48)
    from stable_baselines3 import PPO

    model = PPO.load(out / "model.zip", device="cpu")
    # position: step in bar (12) + bar in phrase (4) + 2; context: 16 steps x 9 drums
    assert model.observation_space["position"].shape == (12 + 4 + 2,)


def test_generate_takes_the_policy_metre_and_refuses_to_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "takes"
    argv = ["generate", str(run_dir / "policy.pt"), "--num", "2", "--seq-len", "32",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"take{i}{s}" for i in range(2) for s in (".mid", ".npz", ".png")] + ["summary.json"])
    capsys.readouterr()
    assert main(argv) == 2
    assert "--force" in _one_error_line(capsys, "generate")
    assert main([*argv, "--force", "--deterministic"]) == 0
    cfg = parse_config(argv)
    assert (cfg.context_steps, cfg.steps_per_bar, cfg.bars_per_phrase) == (16, 16, 4)
