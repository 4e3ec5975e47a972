"""agents.task.RunConfig: one default per run setting, unused ones refused, threads restored."""

import dataclasses
import re

import pytest
import torch

from agents.cli import CONFIGS, config_class
from agents.task import RunConfig


def test_every_command_config_takes_the_run_settings_with_one_default():
    run = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for command in CONFIGS:
        cls = config_class(command)
        assert issubclass(cls, RunConfig), command
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        assert {k: fields[k] for k in run} == run, command


def test_out_defaults_to_the_commands_own_folder():
    from agents.baselines.sb3 import BaselineConfig
    from agents.evaluation.benchmark import BenchmarkConfig
    from agents.training.ppo import PPOConfig
    from agents.training.pretrain import PretrainConfig
    from agents.tune import TuneConfig

    outs = [c().out for c in (BenchmarkConfig, TuneConfig)]
    assert outs == ["benchmarks/results", "runs/tune"]
    assert PPOConfig(out="x").out == "x"
    # the commands that train: a new folder per run, CleanRL's {env}__{exp}__{seed}__{time}
    for cls, exp in ((PPOConfig, "ppo"), (PretrainConfig, "pretrain"), (BaselineConfig, "sb3_ppo")):
        assert re.fullmatch(rf"runs/DrumCompose-v0__{exp}__5__\d{{10}}", cls(seed=5).out), cls
    assert re.fullmatch(r"runs/DrumCompose-v0__mine__0__\d{10}", PPOConfig(exp_name="mine").out)


def test_an_unused_run_setting_is_refused_by_name():
    from agents.baselines.sb3 import BaselineConfig
    from agents.evaluation.benchmark import BenchmarkConfig

    with pytest.raises(ValueError, match=r"^resume: BaselineConfig has no use"):
        BaselineConfig(resume=True)
    with pytest.raises(ValueError, match=r"^seed: BenchmarkConfig has no use"):
        BenchmarkConfig(seed=3)
    assert BaselineConfig(resume=False).resume is False


@pytest.mark.parametrize(("changes", "field"), [
    ({"seed": -1}, "seed"), ({"device": "gpu"}, "device"), ({"threads": 0}, "threads"),
    ({"amp": "yes"}, "amp"), ({"out": ""}, "out"), ({"progress": 1}, "progress"),
])  # fmt: skip
def test_a_bad_run_setting_names_the_field(changes, field):
    from agents.training.ppo import PPOConfig

    with pytest.raises(ValueError, match=rf"^{field}"):
        PPOConfig(**changes)


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with RunConfig(threads=1).torch_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with RunConfig(threads=None).torch_threads():
        assert torch.get_num_threads() == before
