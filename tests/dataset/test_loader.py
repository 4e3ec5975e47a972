"""collate_drum_batch and get_complete_rl_dataloader: padding, masks, seeding, DDP sharding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_tree import leaves
from torch.utils.data import SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from dataset.hierarchical import CompleteHierarchicalDrumDataset as DS
from dataset.loader import collate_drum_batch, get_complete_rl_dataloader, set_loader_epoch

SMALL = {"seq_len": 16, "steps_per_bar": 4, "bars_per_phrase": 2}


def corpus(lengths: list[int], drums: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((n, drums)) < 0.4).astype(np.float32) for n in lengths]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for i, s in enumerate(corpus([30, 16, 21, 9, 5], seed=1)):
        np.savez(tmp_path / f"s{i}.npz", sequence=s)
    return tmp_path


def batches(loader: torch.utils.data.DataLoader) -> list[dict]:
    return list(loader)


def assert_batches_equal(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for k in ("step", "mask", "lengths", "bar", "bar_mask", "phrase", "phrase_mask"):
            assert torch.equal(x[k], y[k]), k
        for mx, my in zip(x["metrics"], y["metrics"], strict=True):
            lx, ly = leaves(mx), leaves(my)
            assert list(lx) == list(ly)
            for k in lx:
                assert torch.equal(lx[k], ly[k]), k


# ----------------------------------------------------------------------------- collate


def test_collate_pads_and_masks_variable_lengths() -> None:
    # a silent sequence and a full one: padding (0) must be told apart from silence (0)
    seqs = [np.zeros((9, 3), np.float32), np.ones((16, 3), np.float32), corpus([5])[0]]
    ds = DS(None, sequences=seqs, **SMALL)
    batch = collate_drum_batch([ds[0], ds[1], ds[2]])
    assert batch["step"].shape == (3, 16, 3) and batch["step"].dtype == torch.float32
    assert batch["lengths"].tolist() == [9, 16, 5] and batch["lengths"].dtype == torch.int64
    assert batch["mask"].dtype == torch.bool and batch["mask"].shape == (3, 16)
    for b, n in enumerate([9, 16, 5]):
        assert batch["mask"][b, :n].all() and not batch["mask"][b, n:].any()
        assert torch.equal(batch["step"][b, :n], torch.from_numpy(seqs[b][:n]))
        assert (batch["step"][b, n:] == 0).all()
    # the silent sequence is all zero, yet its real steps are masked True
    assert (batch["step"][0] == 0).all() and batch["mask"][0].sum() == 9
    # bars: 2, 4, 1 complete bars of 4 steps; phrases: 1, 2, 0 of 8 steps; one row (the
    # mean of each drum over the unit, the seed's _aggregate) per bar / phrase
    assert batch["bar"].shape == (3, 4, 3) and batch["bar_mask"].sum(1).tolist() == [2, 4, 1]
    assert batch["phrase"].shape == (3, 2, 3)
    assert batch["phrase_mask"].sum(1).tolist() == [1, 2, 0]
    assert not batch["bar"][0, 2:].any() and not batch["phrase"][2].any()
    assert torch.equal(batch["bar"][1], ds[1]["bar"]) and (batch["bar"][1] == 1).all()
    assert torch.equal(batch["bar"][0, :2], torch.zeros(2, 3))  # silence, yet masked True
    assert isinstance(batch["metrics"], list) and len(batch["metrics"]) == 3
    assert batch["metrics"][1]["bar"]["density"].shape == (4,)
    assert torch.equal(
        batch["metrics"][2]["song"]["avg_hits"], ds[2]["metrics"]["song"]["avg_hits"]
    )


def test_collate_without_complete_bars_or_phrases() -> None:
    ds = DS(None, sequences=corpus([3, 2]), **SMALL)
    batch = collate_drum_batch([ds[0], ds[1]])
    assert batch["bar"].shape == (2, 0, 3) and batch["bar_mask"].shape == (2, 0)
    assert batch["phrase"].shape == (2, 0, 3)
    assert batch["mask"].sum().item() == 5


def test_collate_accepts_numpy_samples() -> None:
    seqs = corpus([20, 7])
    a = DS(None, sequences=seqs, as_numpy=True, **SMALL)
    t = DS(None, sequences=seqs, **SMALL)
    x, y = collate_drum_batch([a[0], a[5]]), collate_drum_batch([t[0], t[5]])
    for k in ("step", "mask", "lengths", "bar", "bar_mask", "phrase", "phrase_mask"):
        assert torch.equal(x[k], y[k]), k


def test_collate_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        collate_drum_batch([])


# ----------------------------------------------------------------------------- dataloader


def test_dataloader_shapes_and_contents(folder: Path) -> None:
    loader = get_complete_rl_dataloader(folder, 16, 4, 2, batch_size=4, shuffle=False)
    ds = loader.dataset
    assert isinstance(ds, DS) and len(ds) == 15 + 1 + 6 + 1 + 1
    seen = 0
    for batch in loader:
        b = batch["step"].shape[0]
        assert batch["step"].shape[2] == 3 and batch["step"].shape[1] == batch["lengths"].max()
        for j in range(b):
            sample = ds[seen + j]
            n = int(batch["lengths"][j])
            assert torch.equal(batch["step"][j, :n], sample["step"])
            assert not batch["mask"][j, n:].any()
        seen += b
    assert seen == len(ds)


def test_seeded_shuffle_repeats(folder: Path) -> None:
    def order(seed: int) -> list[list[int]]:
        loader = get_complete_rl_dataloader(folder, 16, 4, 2, batch_size=3, seed=seed)
        return [b["lengths"].tolist() + b["step"].sum((1, 2)).tolist() for b in loader]

    assert order(5) == order(5)
    assert order(5) != order(6)


def test_workers_do_not_change_the_batches(folder: Path) -> None:
    kw = {"batch_size": 4, "augment": True, "seed": 3}
    serial = get_complete_rl_dataloader(folder, 16, 4, 2, num_workers=0, **kw)
    parallel = get_complete_rl_dataloader(folder, 16, 4, 2, num_workers=2, **kw)
    set_loader_epoch(serial, 1)
    set_loader_epoch(parallel, 1)
    assert_batches_equal(batches(serial), batches(parallel))


def test_set_loader_epoch_changes_augmentation(folder: Path) -> None:
    loader = get_complete_rl_dataloader(folder, 16, 4, 2, shuffle=False, augment=True)
    first = batches(loader)
    assert_batches_equal(first, batches(loader))
    set_loader_epoch(loader, 1)
    assert loader.dataset.epoch == 1
    second = batches(loader)
    assert any(not torch.equal(a["step"], b["step"]) for a, b in zip(first, second, strict=True))


def test_dataset_kwargs_are_passed_through(folder: Path) -> None:
    loader = get_complete_rl_dataloader(folder, 16, 4, 2, stride=4, fast_threshold=2)
    assert loader.dataset.stride == 4 and loader.dataset.fast_threshold == 2
    loader = get_complete_rl_dataloader(None, 16, 4, 2, sequences=corpus([20]))
    assert len(loader.dataset) == 5


def test_explicit_sampler(folder: Path) -> None:
    ds_len = len(get_complete_rl_dataloader(folder, 16, 4, 2).dataset)
    sampler = SequentialSampler(range(ds_len))
    loader = get_complete_rl_dataloader(folder, 16, 4, 2, batch_size=ds_len, sampler=sampler)
    assert loader.sampler is sampler
    with pytest.raises(ValueError, match="sampler"):
        get_complete_rl_dataloader(folder, 16, 4, 2, sampler=sampler, distributed=True)
    with pytest.raises(ValueError, match="batch_size"):
        get_complete_rl_dataloader(folder, 16, 4, 2, batch_size=0)


# ----------------------------------------------------------------------------- distributed


@pytest.mark.parametrize("shuffle", [True, False])
def test_distributed_shards_are_disjoint_and_cover_the_data(folder: Path, shuffle: bool) -> None:
    loaders = [
        get_complete_rl_dataloader(
            folder,
            16,
            4,
            2,
            batch_size=5,
            shuffle=shuffle,
            distributed=True,
            num_replicas=2,
            rank=r,
            seed=9,
        )
        for r in range(2)
    ]
    n = len(loaders[0].dataset)
    assert n % 2 == 0  # 24 samples: no padding by repetition
    shards = []
    for loader in loaders:
        assert isinstance(loader.sampler, DistributedSampler)
        idx = list(loader.sampler)
        assert len(idx) == n // 2
        shards.append(set(idx))
        # the batches hold the sampler's samples, in its order
        steps = torch.cat([b["step"].sum((1, 2)) for b in loader])
        want = torch.stack([loader.dataset[i]["step"].sum() for i in idx])
        assert torch.equal(steps, want)
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == set(range(n))


def test_distributed_odd_size_and_epochs(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", sequence=corpus([20])[0])  # 5 samples
    loaders = [
        get_complete_rl_dataloader(tmp_path, 16, 4, 2, distributed=True, num_replicas=2, rank=r)
        for r in range(2)
    ]
    idx = [list(lo.sampler) for lo in loaders]
    assert len(idx[0]) == len(idx[1]) == 3  # padded by repeating one sample
    assert set(idx[0]) | set(idx[1]) == set(range(5))
    before = list(loaders[0].sampler)
    set_loader_epoch(loaders[0], 1)
    after = list(loaders[0].sampler)
    set_loader_epoch(loaders[0], 0)
    assert list(loaders[0].sampler) == before
    assert after != before  # a new epoch reshuffles


# ----------------------------------------------------------------------------- built-in corpus


@pytest.mark.skipif(
    importlib.util.find_spec("dataset.synthetic") is None,
    reason="dataset/synthetic.py is not written yet",
)
def test_default_corpus_when_no_folder() -> None:
    loader = get_complete_rl_dataloader(None, batch_size=4)
    batch = next(iter(loader))
    assert batch["step"].shape[0] == 4 and batch["step"].shape[2] == 9
    assert batch["mask"].any()
