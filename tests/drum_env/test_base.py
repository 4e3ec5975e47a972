"""Tests for drum_env/base.py: the env arguments declared once, shared by env, vector env, band."""

from __future__ import annotations

import dataclasses
import inspect

import gymnasium as gym
import numpy as np
import pytest

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from dataset.drums import DRUM_NAMES
from dataset.midi import DRUM_NAMES as MIDI_DRUM_NAMES
from drum_env.band import DrumBandParallelEnv
from drum_env.base import DrumComposeArgs, render_canvas
from drum_env.env import DrumComposeEnv
from drum_env.render import DEFAULT_DRUM_NAMES
from drum_env.vector import DrumComposeVectorEnv

FIELDS = [f.name for f in dataclasses.fields(DrumComposeArgs)]


def test_every_constructor_shows_the_same_arguments():
    def names(cls):
        return list(inspect.signature(cls).parameters)

    assert names(DrumComposeEnv) == FIELDS
    assert names(DrumComposeVectorEnv) == ["num_envs", *FIELDS]
    assert names(DrumBandParallelEnv) == [*FIELDS, "max_cycles", "agent_weight"]
    defaults = {f.name: f.default for f in dataclasses.fields(DrumComposeArgs)}
    for cls in (DrumComposeEnv, DrumComposeVectorEnv, DrumBandParallelEnv):
        params = inspect.signature(cls).parameters
        assert {k: params[k].default for k in FIELDS} == defaults, cls.__name__


def test_positional_and_keyword_arguments_build_the_same_env():
    by_position = DrumComposeEnv(None, 64, 16, 4, 1, 32, None, "hierarchical")
    by_keyword = gym.make("DrumCompose-v0", seq_len=64, prompt_bars=1, shaping="hierarchical")
    assert by_position.config == by_keyword.unwrapped.config
    vector = DrumComposeVectorEnv(2, None, 64, prompt_bars=1, shaping="hierarchical")
    assert vector.config == by_position.config and vector.num_envs == 2


def test_arguments_are_checked_before_the_data_is_read(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ValueError, match="seq_len"):
        DrumComposeArgs(data=missing, seq_len=60)
    with pytest.raises(ValueError, match="render_mode"):
        DrumComposeArgs(data=missing, render_mode="human")
    with pytest.raises(ValueError, match="unknown shaping"):
        DrumBandParallelEnv(data=missing, shaping="nope")
    with pytest.raises(TypeError, match="bogus"):
        DrumComposeEnv(bogus=1)
    args = DrumComposeArgs(sections=[(0, 32)])
    assert args.sections == ((0, 32),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.seq_len = 64  # type: ignore[misc]


def test_the_three_envs_render_with_one_helper():
    env = DrumComposeEnv(seq_len=64, prompt_bars=1, render_mode="ansi")
    band = DrumBandParallelEnv(seq_len=64, prompt_bars=1, render_mode="ansi")
    vector = DrumComposeVectorEnv(1, seq_len=64, prompt_bars=1, render_mode="ansi")
    env.reset(seed=0, options={"window": 3})
    band.reset(seed=0, options={"window": 3})
    vector.reset(seed=0, options={"window": 3})
    expected = render_canvas("ansi", env.canvas, env.config, env.config.prompt_steps)
    assert env.render() == band.render() == vector.render()[0] == expected
    np.testing.assert_array_equal(env.canvas, band.canvas)
    np.testing.assert_array_equal(env.reference, band.reference)
    env.close(), band.close(), env.close(), band.close()


def test_drum_names_are_defined_once():
    assert MIDI_DRUM_NAMES is DRUM_NAMES and DEFAULT_DRUM_NAMES is DRUM_NAMES
