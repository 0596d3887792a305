"""Finding, verifying and splitting the real FashionMNIST."""

import shutil
from pathlib import Path

import pytest
import torch

from initbench import data
from initbench.data import fashion_mnist, idx
from initbench.errors import InitbenchError
from initbench.settings import DataSettings


def test_system_copy_is_decompressed_and_verified(data_dir: Path) -> None:
    raw = fashion_mnist.raw_dir(data_dir)
    assert sorted(p.name for p in raw.iterdir()) == sorted(fashion_mnist.SHA256)
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 47_040_016
    fashion_mnist.verify(raw)


def test_idx_reader_matches_torchvision(data_dir: Path) -> None:
    from torchvision import datasets

    for train, prefix in ((True, "train"), (False, "t10k")):
        reference = datasets.FashionMNIST(str(data_dir), train=train, download=False)
        raw = fashion_mnist.raw_dir(data_dir)
        images, labels = idx.read(raw / f"{prefix}-images-idx3-ubyte", "images"), idx.read(
            raw / f"{prefix}-labels-idx1-ubyte", "labels")
        assert torch.equal(torch.from_numpy(images), reference.data)
        assert torch.equal(torch.from_numpy(labels).long(), reference.targets)


def test_split_sizes_ranges_and_classes(data_dir: Path) -> None:
    s = data.load(data_dir, DataSettings(split_seed=0))
    assert s.sizes() == {"train": 48_000, "val": 12_000, "test": 10_000}
    assert s.x_train.shape == (48_000, 784) and s.x_train.dtype == torch.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    # FashionMNIST has 6,000 training images per class; a random 20% split keeps about 1,200 of each.
    counts = torch.bincount(s.y_val, minlength=10)
    assert counts.min() > 1_050 and counts.max() < 1_350
    assert torch.equal(torch.bincount(s.y_test), torch.full((10,), 1_000))


def test_split_is_seeded_and_subset_is_a_prefix_of_the_training_split(data_dir: Path, small) -> None:
    full = data.load(data_dir, DataSettings(split_seed=0))
    assert torch.equal(small.x_train, full.x_train[:2000]) and torch.equal(small.x_val, full.x_val)
    other = data.load(data_dir, DataSettings(split_seed=1, train_samples=2000))
    assert not torch.equal(other.x_val, full.x_val)
    # Validation and training images never overlap (the split is a permutation of 60,000).
    train_keys = set(map(bytes, (full.x_train * 255).to(torch.uint8).numpy()))
    overlap = sum(bytes(row) in train_keys for row in (full.x_val[:500] * 255).to(torch.uint8).numpy())
    assert overlap <= 2  # FashionMNIST holds a handful of duplicate images, no more


def test_too_many_train_samples_is_an_error(data_dir: Path) -> None:
    with pytest.raises(InitbenchError, match="only 48,000"):
        data.load(data_dir, DataSettings(train_samples=50_000))


def test_corrupted_file_is_named(data_dir: Path, tmp_path: Path) -> None:
    raw = fashion_mnist.raw_dir(tmp_path)
    shutil.copytree(fashion_mnist.raw_dir(data_dir), raw)
    victim = raw / "train-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-100])  # truncated
    with pytest.raises(InitbenchError) as err:
        data.load(tmp_path, DataSettings())
    assert str(victim) in str(err.value) and "corrupted or truncated" in str(err.value)


def test_corrupted_system_copy_is_named(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    system = tmp_path / "system"
    system.mkdir()
    for name in fashion_mnist.SHA256:
        shutil.copy(fashion_mnist.DEFAULT_SYSTEM_DIR / f"{name}.gz", system)
    broken = system / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:5000])
    monkeypatch.setenv(fashion_mnist.SYSTEM_DIR_ENV, str(system))
    with pytest.raises(InitbenchError, match="t10k-images-idx3-ubyte.gz"):
        fashion_mnist.ensure(tmp_path / "data")
    assert not (fashion_mnist.raw_dir(tmp_path / "data") / "t10k-images-idx3-ubyte").exists()


def test_no_data_and_no_network_says_how_to_get_it(offline: Path) -> None:
    with pytest.raises(InitbenchError) as err:
        fashion_mnist.ensure(offline)
    message = str(err.value)
    assert "downloading it failed" in message
    assert "apt-get install -y dataset-fashion-mnist" in message and fashion_mnist.SYSTEM_DIR_ENV in message
