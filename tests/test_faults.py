"""Bad input and faults, one regression test per finding of the adversarial run (rows 1-19).

Every CLI row runs ``agents.cli.main(argv)`` in-process and checks what a user sees: exit
status 2, exactly one line on stderr (``drum-env COMMAND: error: ...``) that names the argument
or the file, no traceback. Rows 1-2 also check that the password appears nowhere: not on stdout
or stderr, not in the study's stored attributes, not in the storage file.

Concurrency: two runs on one ``--out`` (the second is refused, naming the holder) and the stale
lock of a SIGKILLed run (taken over) are here. Two tuning workers sharing one study and a killed
worker's trial are covered by ``tests/agents/test_tune.py``
(``test_two_workers_share_one_postgres_study``, ``test_a_dead_workers_trial_is_failed_by_the_
heartbeat``), not repeated here.

"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
import zipfile
from pathlib import Path

import gymnasium as gym
import mido
import numpy as np
import pretty_midi
import pytest
from torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread)

import drum_env  # noqa: F401  (registers DrumCompose-v0)
from agents.cli import main
from agents.training.runs import LOCK_FILE, RunDirError, RunLock, RunLockWarning
from dataset.io import DataError, DataWarning, load_npz_file, load_npz_folder, validate_sequence
from dataset.midi import convert_folder, midi_to_sequence

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("DRUM_ENV_TEST_POSTGRES_URL")
TINY_TRAIN = ["--total-timesteps", "512", "--num-envs", "16", "--num-steps", "32", "--seq-len",
              "32", "--no-tensorboard", "--no-progress"]  # fmt: skip
TUNE = ["--n-trials", "0", "--no-progress", "--heartbeat-s", "none"]
SECRET = "PASSWORD"


def error_line(capsys, command: str) -> str:
    """The one stderr line of a failed command (no usage block, no traceback)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"drum-env {command}: error: "), lines[0]
    assert "Traceback" not in captured.err and "usage:" not in captured.err
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 1024-step PPO run (two iterations of 512), made by ``drum-env train``."""
    out = tmp_path_factory.mktemp("faults") / "ppo"
    assert main(["train", *TINY_TRAIN, "--out", str(out), "--total-timesteps", "1024"]) == 0
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def write_midi(path: Path, steps: list[tuple[int, int]], *, meter=(4, 4), is_drum=True,
               program=0) -> Path:  # fmt: skip
    """A one-track MIDI file: ``(pitch, 16th-note step)`` notes at 120 bpm."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
    for pitch, step in steps:
        inst.notes.append(pretty_midi.Note(100, pitch, step * 0.125, step * 0.125 + 0.1))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def write_format2(path: Path) -> Path:
    """A format-2 MIDI file: two independent 16-note patterns, one per track."""
    mid = mido.MidiFile(type=2, ticks_per_beat=480)
    for pitch in (36, 38):
        track = mido.MidiTrack()
        for i in range(16):
            track.append(mido.Message("note_on", note=pitch, velocity=100, channel=9,
                                      time=0 if i == 0 else 60))  # fmt: skip
            track.append(mido.Message("note_off", note=pitch, velocity=0, channel=9, time=60))
        mid.tracks.append(track)
    mid.save(str(path))
    return path


def npz_claiming(path: Path, shape: tuple[int, ...], data: bytes) -> Path:
    """An .npz whose ``sequence`` header claims ``shape`` (float32) but holds ``data``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("sequence.npy", header.getvalue() + data)
    return path


def zero_bomb(path: Path, megabytes: int) -> Path:
    """An honest-header .npz of ``megabytes`` MiB of float32 zeros (inflates ~1000x)."""
    rows = megabytes * 2**20 // (4 * 8)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 8)}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("sequence.npy", "w") as f:
        f.write(header.getvalue())
        chunk = bytes(2**20)
        for _ in range(rows * 32 // 2**20):
            f.write(chunk)
    return path


# --------------------------------------------------------------------------- rows 1-2, 14: secrets


@pytest.mark.parametrize("url", [
    f"postgresql//u:{SECRET}@db-host/x",  # row 1: a typo, no ':'
    f"postgresql://u:{SECRET}/x",  # no host: the password would be read as a port
    f"postgresql:/u:{SECRET}@db-host/x",
])  # fmt: skip
def test_row1_an_unparsable_storage_url_never_shows_its_password(url, tmp_path, capsys):
    assert main(["tune", "--storage", url, "--out", str(tmp_path), *TUNE]) == 2
    captured = capsys.readouterr()
    assert "storage" in captured.err and SECRET not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1


def test_row2_a_password_in_the_query_is_masked_everywhere(tmp_path, capsys):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}?password={SECRET}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy: pysqlite ignores the query argument
        assert main(["tune", "--storage", url, "--study-name", "q", "--out", str(tmp_path),
                     *TUNE]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "password=***" in captured.out
    assert SECRET not in captured.out + captured.err
    import optuna

    study = optuna.load_study(study_name="q", storage=f"sqlite:///{db}")
    stored = json.dumps(study.user_attrs, default=str)
    assert SECRET not in stored
    assert SECRET.encode() not in db.read_bytes()


def test_row2_an_unreachable_server_is_named_without_the_query_password(capsys, tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql://u@127.0.0.1:1/x?password={SECRET}&sslmode=disable"
    assert main(["tune", "--storage", url, "--out", str(tmp_path), *TUNE]) == 2
    line = error_line(capsys, "tune")
    assert "127.0.0.1:1/x" in line and "password=***" in line and SECRET not in line


@pytest.mark.skipif(POSTGRES_URL is None, reason="DRUM_ENV_TEST_POSTGRES_URL unset")
def test_row2_postgres_study_attributes_hold_no_password(tmp_path, capsys):
    pytest.importorskip("psycopg")
    import optuna
    from sqlalchemy.engine import make_url

    from agents.storage import open_storage

    parsed = make_url(POSTGRES_URL)
    password = parsed.password
    query_url = parsed.set(password=None).update_query_dict({"password": password})
    url = query_url.render_as_string(hide_password=False)
    name = f"faults-{uuid.uuid4().hex[:10]}"
    try:
        assert main(["tune", "--storage", url, "--study-name", name, "--out", str(tmp_path),
                     *TUNE]) == 0  # fmt: skip
        captured = capsys.readouterr()
        assert f"password={password}" not in captured.out + captured.err
        assert "password=***" in captured.out
        study = optuna.load_study(study_name=name, storage=open_storage(POSTGRES_URL))
        assert password not in json.dumps(study.user_attrs, default=str)
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(POSTGRES_URL))


def test_row14_a_port_that_is_not_a_number_is_named(capsys, tmp_path):
    url = f"postgresql://u:{SECRET}@db-host:abc/x"
    assert main(["tune", "--storage", url, "--out", str(tmp_path), *TUNE]) == 2
    line = error_line(capsys, "tune")
    assert "storage" in line and "port" in line and SECRET not in line


# ----------------------------------------------------------------------- row 3: one run per folder

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from agents.training.runs import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def _hold(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_row3_a_second_run_on_a_locked_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _hold(out)
    try:
        start = time.monotonic()
        assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 2
        line = error_line(capsys, "train")
        assert f"pid {proc.pid}" in line and "in use by another run" in line
        assert time.monotonic() - start < 10  # refused at once, before any training
        assert not (out / "checkpoint.pt").exists()
        with pytest.raises(RunDirError, match=f"pid {proc.pid}"):
            RunLock(out).acquire()
    finally:
        _kill(proc)


def test_row3_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    proc = _hold(out)
    _kill(proc)  # SIGKILL: the lock file stays, naming the dead pid
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == proc.pid
    with pytest.warns(RunLockWarning, match=f"pid {proc.pid}.*no longer running"):
        assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 0
    assert (out / "checkpoint.pt").is_file() and not (out / LOCK_FILE).exists()


def test_row3_the_lock_is_released_on_any_exit_and_reentrant_in_one_process(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt), RunLock(out):
        with RunLock(out) as inner:  # the same process re-enters its own lock
            assert inner.held
        raise KeyboardInterrupt
    assert not out.exists()  # created by the lock, left empty: removed
    out.mkdir()
    with RunLock(out) as lock:
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid() == lock.holder["pid"]
    assert out.is_dir() and not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_row3_two_train_commands_on_one_folder(tmp_path, capsys):
    out = tmp_path / "run"
    budget = ["--total-timesteps", str(10**8), "--num-envs", "4", "--num-steps", "32",
              "--seq-len", "32", "--no-tensorboard", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "train", *budget, "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists():  # written under the lock
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert main(["train", *TINY_TRAIN, "--out", str(out), "--force"]) == 2
        line = error_line(capsys, "train")
        assert f"pid {proc.pid}" in line and "cli.py train" in line
    finally:
        _kill(proc)
    with pytest.warns(RunLockWarning, match=f"pid {proc.pid}"):
        assert main(["train", *TINY_TRAIN, "--out", str(out), "--force"]) == 0


# ------------------------------------------------------------------------- rows 4-5: honest resume


@pytest.mark.parametrize(("extra", "named"), [
    (["--learning-rate", "0.1", "--total-timesteps", "2048"], "learning_rate"),  # row 4
    (["--num-steps", "16", "--total-timesteps", "2048"], "num_steps"),  # row 5
    (["--seed", "9", "--total-timesteps", "2048"], "seed"),
    (["--total-timesteps", "512"], "total-timesteps"),  # a smaller budget
])  # fmt: skip
def test_rows4_5_resume_refuses_what_it_cannot_honour(extra, named, finished_run, tmp_path,
                                                      capsys):  # fmt: skip
    out = copy_run(finished_run, tmp_path)
    before = (out / "checkpoint.pt").read_bytes()
    argv = ["train", *TINY_TRAIN, "--out", str(out), "--resume", *extra]
    assert main(argv) == 2
    assert named in error_line(capsys, "train")
    assert (out / "checkpoint.pt").read_bytes() == before


def test_rows4_5_resume_extends_a_run_to_the_new_budget(finished_run, tmp_path):
    from agents.training.checkpoint import load_checkpoint

    out = copy_run(finished_run, tmp_path)
    argv = ["train", *TINY_TRAIN, "--out", str(out), "--resume", "--total-timesteps", "1536"]
    assert main(argv) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["global_step"] == 1536 and state["iteration"] == 3
    assert all(row["charts/learning_rate"] > 0 for row in state["history"])  # no iteration at lr 0


# ------------------------------------------------------------------------------- rows 6-7: weights


@pytest.mark.parametrize("weights", [
    '{"step": -1}', '{"step": 1e308, "bar": 1e308}', '{"step": "a"}', '{"step": NaN}',
])  # fmt: skip
@pytest.mark.parametrize("learn", [[], ["--learn-weights"]])
def test_rows6_7_weights_must_be_finite_and_in_range(weights, learn, capsys, tmp_path):
    argv = ["train", *TINY_TRAIN, "--out", str(tmp_path / "w"), "--weights", weights, *learn]
    assert main(argv) == 2
    line = error_line(capsys, "train")
    assert "weights" in line and "'step'" in line and "[0, 1000]" in line
    assert not (tmp_path / "w").exists()


def test_row6_learned_weights_are_honoured_or_refused_never_replaced():
    import torch

    from agents.training.trainer_reward import RewardWeights
    from drum_env.rewards import TERMS

    def vector(**given):
        return np.array([given.get(k, 0.0) for k in TERMS])

    weights = RewardWeights(vector(step=0.25, bar=1e-6, song=1.0), ("step", "bar"))
    np.testing.assert_allclose(weights().detach().double().numpy(),
                               vector(step=0.25, bar=1e-6, song=1.0), rtol=1e-5)  # fmt: skip
    for given, learned, match in [
        (vector(step=-1.0, song=1.0), ("step",), "'step' must be finite and >= 0"),
        (vector(step=0.0, song=1.0), ("step",), "'step' is learned but starts at 0"),
        (vector(step=1e-50, song=1.0), ("step",), "'step'=1e-50 cannot be held"),
    ]:
        with pytest.raises(ValueError, match=match):
            RewardWeights(given, learned)
    fixed = RewardWeights(vector(step=1e-50, song=1.0))  # nothing learned: float64 weights used
    assert torch.isfinite(fixed()).all()


@pytest.mark.parametrize("weights", [{"step": "a"}, {"step": -1.0}, {"step": 1e308}])
def test_rows6_7_15_the_env_names_bad_weights(weights):
    with pytest.raises(ValueError, match=r"weights.*'step'"):
        gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1, weights=weights)


def test_the_task_and_the_env_share_one_weight_bound():
    from agents.task import MAX_WEIGHT
    from drum_env.rewards import MAX_WEIGHT as ENV_MAX_WEIGHT

    assert MAX_WEIGHT == ENV_MAX_WEIGHT


# --------------------------------------------------------------------------- rows 8, 10: npz files


def test_row8_no_cast_zeroes_a_hit(tmp_path):
    seq = np.array([[1e-50, 0.0], [0.5, 1.0], [np.nextafter(0, 1), 0.0]])
    np.savez(tmp_path / "tiny.npz", sequence=seq)
    for loaded in (load_npz_file(tmp_path / "tiny.npz"), validate_sequence(seq)):
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded > 0, seq > 0)
    assert validate_sequence(seq)[0, 0] == np.finfo(np.float32).tiny  # float32's smallest normal
    already = np.array([[1e-40, 0.0]], dtype=np.float32)  # a float32 subnormal is a hit as it is
    assert validate_sequence(already) is already


def test_row10_an_absurd_header_or_a_bomb_is_refused_before_allocating(tmp_path, capsys):
    claim = npz_claiming(tmp_path / "claim.npz", (10**12, 9), bytes(3600))
    with pytest.raises(DataError, match=r"claim.npz.*claims shape \(1000000000000, 9\)"):
        load_npz_file(claim)
    short = npz_claiming(tmp_path / "short.npz", (1000, 9), bytes(400))
    with pytest.raises(DataError, match=r"short.npz.*holds 400 bytes"):
        load_npz_file(short)
    bomb = zero_bomb(tmp_path / "bomb.npz", 24)
    with pytest.raises(DataError, match=r"bomb.npz.*decompression bomb"):
        load_npz_file(bomb)
    with pytest.raises(DataError, match=r"bomb.npz.*more than the limit of 1,048,576 bytes"):
        load_npz_file(bomb, max_bytes=2**20)
    folder = tmp_path / "data"
    folder.mkdir()
    claim.rename(folder / "claim.npz")
    assert main(["stats", str(folder)]) == 2
    assert "claim.npz" in error_line(capsys, "stats")


def test_row10_out_of_memory_is_one_line_not_a_traceback(monkeypatch, capsys):
    from dataset.hierarchical import CompleteHierarchicalDrumDataset

    def explode(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.3 TiB")

    monkeypatch.setattr(CompleteHierarchicalDrumDataset, "summary", explode)
    assert main(["stats"]) == 2
    assert "out of memory" in error_line(capsys, "stats")


# ----------------------------------------------------------------------------- rows 9, 17-19: MIDI


def test_row9_a_format2_midi_file_is_refused(tmp_path, capsys):
    src = tmp_path / "midi"
    src.mkdir()
    path = write_format2(src / "patterns.mid")
    with pytest.raises(ValueError, match=r"patterns.mid is format 2"):
        midi_to_sequence(path)
    assert main(["convert", str(src), str(tmp_path / "npz"), "--no-progress"]) == 2
    line = error_line(capsys, "convert")
    assert "patterns.mid" in line and "format 2" in line


def test_row17_a_folder_of_only_bad_midi_files_exits_2(tmp_path, capsys):
    src = tmp_path / "midi"
    src.mkdir()
    for i in range(5):
        (src / f"bad{i}.mid").write_bytes(b"MThd not really")
    assert main(["convert", str(src), str(tmp_path / "npz"), "--no-progress"]) == 2
    line = error_line(capsys, "convert")
    assert "none of the 5 MIDI file(s)" in line and "bad0.mid" in line and "2 more" in line


@pytest.mark.parametrize(("meter", "bar"), [((7, 8), 14), ((3, 4), 12)])
def test_row18_other_meters_are_refused_with_their_bar_length(meter, bar, tmp_path, capsys):
    src = tmp_path / "midi"
    src.mkdir()
    write_midi(src / "four.mid", [(36, s) for s in range(0, 32, 4)])
    odd = write_midi(src / "odd.mid", [(36, s) for s in range(0, 28, 2)], meter=meter)
    assert midi_to_sequence(odd).time_signatures == (meter,)
    out = tmp_path / "npz"
    assert main(["convert", str(src), str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    # one whole line per skipped file, its path unbroken however long (a log keeps it greppable)
    (line,) = [text for text in err.splitlines() if text.startswith("skipped")]
    assert str(src / "odd.mid") in line and f"{meter[0]}/{meter[1]}" in line
    assert f"bars are {bar} steps" in line
    assert [p.name for p in out.iterdir()] == ["four.npz"]
    with np.load(out / "four.npz") as data:
        assert int(data["steps_per_bar"]) == 16 and int(data["steps_per_quarter"]) == 4
        assert data["time_signature"].tolist() == [4, 4]
    assert load_npz_folder(out, steps_per_bar=16).files == [out / "four.npz"]
    with pytest.raises(DataError, match=r"four.npz: its bars are 16 steps long"):
        load_npz_folder(out, steps_per_bar=12)


def _old_style_npz(folder: Path, meter: tuple[int, int]) -> Path:
    """An .npz as convert wrote it before: steps_per_bar=16 (the 4/4 grid), another meter."""
    folder.mkdir(exist_ok=True)
    seq = np.zeros((14 * 8, 9), dtype=np.float32)
    seq[::2, 0] = 1.0
    path = folder / "seven_eight.npz"
    np.savez(path, sequence=seq, steps_per_bar=np.int64(16), time_signature=np.array(meter))
    return path


def test_row18_the_loader_refuses_bars_of_another_length(tmp_path):
    path = _old_style_npz(tmp_path / "old", (7, 8))
    with pytest.raises(DataError, match=r"seven_eight.npz: its bars are 14 steps long.*7/8"):
        load_npz_folder(tmp_path / "old", steps_per_bar=16)
    assert load_npz_file(path, steps_per_bar=14).shape == (112, 9)


def test_row18_the_env_refuses_a_file_recorded_with_other_bars(tmp_path):
    _old_style_npz(tmp_path / "old", (7, 8))
    with pytest.raises(DataError, match="seven_eight.npz"):
        gym.make("DrumCompose-v0", data=str(tmp_path / "old"), seq_len=32, prompt_bars=1)


def test_row19_a_file_without_a_drum_channel_is_warned_about(tmp_path, capsys):
    src = tmp_path / "midi"
    src.mkdir()
    piano = write_midi(src / "piano.mid", [(38, s) for s in range(16)], is_drum=False)
    with pytest.warns(DataWarning, match=r"piano.mid has no drum track.*program\(s\) \[0\]"):
        result = midi_to_sequence(piano)
    assert result.warnings and np.count_nonzero(result.sequence) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # convert_folder reports it instead of warning
        report = convert_folder(src, tmp_path / "npz")
    assert [p.name for p, _ in report.warned] == ["piano.mid"]
    assert main(["convert", str(src), str(tmp_path / "npz2"), "--no-progress"]) == 0
    assert "no drum track" in capsys.readouterr().err


# -------------------------------------------------------------------------- row 11: output folders


def test_row11_convert_into_an_existing_file(tmp_path, capsys):
    src = tmp_path / "midi"
    src.mkdir()
    write_midi(src / "a.mid", [(36, 0)])
    existing = tmp_path / "existing.txt"
    existing.write_text("x")
    assert main(["convert", str(src), str(existing), "--no-progress"]) == 2
    assert "existing.txt is a file" in error_line(capsys, "convert")


def test_row11_generate_into_an_existing_file(finished_run, tmp_path, capsys):
    existing = tmp_path / "existing.txt"
    existing.write_text("x")
    argv = ["generate", str(finished_run / "policy.pt"), "--out", str(existing), "--num", "1"]
    assert main(argv) == 2
    assert "existing.txt" in error_line(capsys, "generate")


def test_row11_train_under_a_file(tmp_path, capsys):
    existing = tmp_path / "existing.txt"
    existing.write_text("x")
    assert main(["train", *TINY_TRAIN, "--out", str(existing / "sub")]) == 2
    assert "existing.txt/sub" in error_line(capsys, "train")


def test_row11_a_read_only_out_fails_before_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(out)):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    start = time.monotonic()
    assert main(["train", *TINY_TRAIN, "--out", str(out)]) == 2
    line = error_line(capsys, "train")
    assert str(out) in line and "Read-only file system" in line
    assert time.monotonic() - start < 5  # at the start, not at the first checkpoint


# ------------------------------------------------------------------------ rows 12-14: config files


@pytest.mark.parametrize("command", ["train", "tune"])
@pytest.mark.parametrize(("content", "kind"), [(b"null", "null"), (b'[{"lr": 1}]', "a list"),
                                               (b'{"seed": "\xff"}', "not UTF-8")])  # fmt: skip
def test_rows12_14_a_config_file_that_is_not_an_object(command, content, kind, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    assert main([command, "--config", str(path)]) == 2
    line = error_line(capsys, command)
    assert "--config" in line and "config.json" in line and kind in line


@pytest.mark.parametrize(("payload", "what"), [
    ({"policy_config": {"x": 1}, "model": {}}, "unknown PolicyConfig field(s) ['x']"),
    ({"policy_config": {"d_model": "wide"}, "model": {}}, "invalid config"),
    ({"policy_config": {}, "model": {}}, "its tensors do not fit"),
    ({"policy_config": [1], "model": {}}, "not a dict of PolicyConfig fields"),
])  # fmt: skip
def test_row13_generate_on_a_checkpoint_that_is_no_policy(payload, what, tmp_path, capsys):
    import torch

    path = tmp_path / "weird.pt"
    torch.save(payload, path)
    assert main(["generate", str(path), "--out", str(tmp_path / "takes")]) == 2
    line = error_line(capsys, "generate")
    assert "weird.pt" in line and what in line


def test_row13_a_checkpoint_whose_tensors_do_not_fit(finished_run, tmp_path, capsys):
    import torch

    state = torch.load(finished_run / "checkpoint.pt", weights_only=True)
    state["model"] = {"input_proj.weight": torch.zeros(3, 3)}
    torch.save(state, tmp_path / "bent.pt")
    assert main(["generate", str(tmp_path / "bent.pt"), "--out", str(tmp_path / "t")]) == 2
    assert "bent.pt" in error_line(capsys, "generate")


def test_row14_generate_num_0_names_num(finished_run, tmp_path, capsys):
    argv = ["generate", str(finished_run / "policy.pt"), "--num", "0", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "num must be an integer >= 1" in error_line(capsys, "generate")


# ----------------------------------------------------------------------- rows 15-16: reset options


@pytest.mark.parametrize(("options", "named"), [
    ({"sequence": "x"}, "options['sequence']"),
    ({"window": None}, "options['window']"),
    (["window", 3], "options must be a dict"),
    ({"window": 1.7}, "options['window']"),  # row 16: not silently window 1
    ({"window": True}, "options['window']"),
    ({"window": 1, "sequence": 0}, "not both"),
])  # fmt: skip
def test_rows15_16_reset_options_are_checked_and_named(options, named):
    env = gym.make("DrumCompose-v0", seq_len=32, prompt_bars=1)
    vec = gym.make_vec("DrumCompose-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       seq_len=32, prompt_bars=1)  # fmt: skip
    for e in (env, vec):
        with pytest.raises(ValueError) as info:
            e.reset(seed=0, options=options)
        assert named in str(info.value)
    _, first = env.reset(seed=0, options={"window": np.int64(1)})
    _, again = env.reset(seed=0, options={"window": 1})
    assert first["window"] == again["window"] == 1
