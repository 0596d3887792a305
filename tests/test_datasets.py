"""The datasets beside FashionMNIST: ``idx:DIR`` (any folder of MNIST's four IDX files, made
here from the real FashionMNIST files) and scikit-learn's bundled 8x8 digits."""

import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from initbench import api, config, data
from initbench.data import digits, fashion_mnist, idx
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import Job
from initbench.models import checkpoint
from initbench.settings import DataSettings, TrainSettings
from initbench.storage import store

NAMES = list(idx.FILES)  # train images, train labels, test images, test labels


def write_idx(path: Path, values: np.ndarray) -> None:
    """``values`` (uint8) as an IDX file, gzipped where the name ends in .gz."""
    content = struct.pack(f">I{values.ndim}I", 0x800 | values.ndim, *values.shape) + values.tobytes()
    path.write_bytes(gzip.compress(content, mtime=0) if path.suffix == ".gz" else content)


def write_folder(folder: Path, values: dict[str, np.ndarray], gzipped: bool) -> Path:
    folder.mkdir(parents=True)
    for name, array in values.items():
        write_idx(folder / (f"{name}.gz" if gzipped else name), array)
    return folder


@pytest.fixture(scope="module")
def two_classes(data_dir: Path) -> dict[str, np.ndarray]:
    """Real FashionMNIST sandals and shirts as classes 0 and 1, cropped to 20x24 (600 to train
    on, 200 to test): a dataset of another size, shape and number of classes."""
    raw = fashion_mnist.raw_dir(data_dir)
    found = {name: idx.read(raw / name, kind) for name, kind in idx.FILES.items()}
    values = {}
    for images, labels, n in ((NAMES[0], NAMES[1], 600), (NAMES[2], NAMES[3], 200)):
        rows = np.flatnonzero(np.isin(found[labels], (5, 6)))[:n]
        values[images] = np.ascontiguousarray(found[images][rows, 2:22, 2:26])
        values[labels] = (found[labels][rows] == 6).astype(np.uint8)
    return values


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, two_classes) -> dict[str, Path]:
    """The same files, plain and gzipped, in two folders."""
    root = tmp_path_factory.mktemp("idx")
    return {"plain": write_folder(root / "plain", two_classes, gzipped=False),
            "gz": write_folder(root / "gz", two_classes, gzipped=True)}


def test_an_idx_folder_is_a_dataset_read_from_its_files(folders, two_classes, monkeypatch) -> None:
    plain, gz = (data.get(f"idx:{folders[k]}") for k in ("plain", "gz"))
    assert plain.name == f"idx:{folders['plain']}" and plain.class_names == ("0", "1")
    assert (plain.input_size, plain.image_shape, plain.train_images, plain.test_images) == (480, (20, 24), 600, 200)
    # Named by the SHA-256 of the decompressed files: gzipped or not, the same data.
    assert gz.files_sha256 == plain.files_sha256 and set(plain.files_sha256) == set(NAMES)
    for dataset in (plain, gz):
        arrays = dataset.read(Path("unused"), lambda _: None)
        assert torch.equal(arrays.x_train, torch.from_numpy(two_classes[NAMES[0]]).view(600, 480))
        assert torch.equal(arrays.y_test, torch.from_numpy(two_classes[NAMES[3]]).long())
    assert data.get(f"idx:{folders['gz']}") is gz  # resolved once while the files stay as they are
    # A relative folder is named absolutely, as settings keep it.
    monkeypatch.chdir(folders["gz"].parent)
    assert config.resolve(options={"dataset": "idx:gz"}).train.data.dataset == gz.name


def test_jobs_are_keyed_by_the_files_not_the_folder(folders) -> None:
    jobs = {k: Job("default", 0, TrainSettings.of(dataset=f"idx:{folder}")) for k, folder in folders.items()}
    assert store.key(jobs["plain"]) == store.key(jobs["gz"])
    identity = store.identity(jobs["gz"])
    assert identity["settings"]["dataset"] == "idx" and str(folders["gz"]) not in json.dumps(identity)
    assert identity["data_files_sha256"] == dict(data.get(f"idx:{folders['gz']}").files_sha256)


def test_idx_of_fashion_mnist_is_fashion_mnist(tmp_path: Path, data_dir: Path) -> None:
    """The real files gzipped as published, read as idx:DIR: the same images, split alike."""
    for name in NAMES:
        shutil.copy(fashion_mnist.DEFAULT_SYSTEM_DIR / f"{name}.gz", tmp_path)
    found = data.get(f"idx:{tmp_path}")
    assert dict(found.files_sha256) == fashion_mnist.SHA256 and found.class_names == tuple("0123456789")
    settings = DataSettings(classes=(5, 6, 0), train_samples=3000)
    ours, theirs = data.load(data_dir, DataSettings(found.name, settings.classes, 3000)), data.load(data_dir, settings)
    assert all(torch.equal(getattr(ours, f), getattr(theirs, f)) for f in ours.__dataclass_fields__)


Change = Callable[[Path, dict[str, np.ndarray]], None]  # (folder, the values written there)


def _copied(name: str, to: str) -> Change:
    return lambda folder, _: shutil.copy(folder / name, folder / to)


def _replaced(name: str, values: Callable[[dict[str, np.ndarray]], np.ndarray]) -> Change:
    return lambda folder, source: write_idx(folder / name, values(source))


def _fifo(folder: Path, _: dict[str, np.ndarray]) -> None:
    (folder / NAMES[0]).unlink()
    os.mkfifo(folder / NAMES[0])


def _hostile(gzipped: bool) -> Change:
    def change(folder: Path, _: dict[str, np.ndarray]) -> None:  # 2^31 x 2^16 x 2^16 images claimed in a few bytes
        (folder / NAMES[0]).unlink()
        content = struct.pack(">4I", 0x803, 2**31, 2**16, 2**16) + bytes(100)
        target = folder / (f"{NAMES[0]}.gz" if gzipped else NAMES[0])
        target.write_bytes(gzip.compress(content) if gzipped else content)
    return change


def _loop(folder: Path, _: dict[str, np.ndarray]) -> None:
    (folder / NAMES[0]).unlink()
    (folder / NAMES[0]).symlink_to(NAMES[0])


def _stray_label(values: dict[str, np.ndarray]) -> np.ndarray:
    labels = values[NAMES[1]].copy()
    labels[7] = 255
    return labels


def _truncated(folder: Path, _: dict[str, np.ndarray]) -> None:
    path = folder / NAMES[2]
    content = path.read_bytes()
    path.unlink()
    (folder / f"{NAMES[2]}.gz").write_bytes(gzip.compress(content[:-100]))


PROBLEMS = {
    "missing file": (lambda folder, _: (folder / NAMES[3]).unlink(),
                     "has no t10k-labels-idx1-ubyte (nor t10k-labels-idx1-ubyte.gz)"),
    "wrong magic": (_copied(NAMES[1], NAMES[0]), "is not an IDX file of images (its magic number is 2049, not 2051"),
    "counts": (_replaced(NAMES[1], lambda v: v[NAMES[1]][:599]), "training set has 600 images but 599 labels"),
    "labels": (_replaced(NAMES[3], lambda v: v[NAMES[3]] * 2), "test labels go up to 2, but its training labels"),
    "shapes": (_replaced(NAMES[2], lambda v: v[NAMES[2]][:, :, :20].copy()),
               "training images are 20x24 and its test images 20x20"),
    "fifo": (_fifo, "is not a regular file: it is a FIFO"),
    "hostile": (_hostile(False), "header describes 9,223,372,036,854,775,824 bytes of images, but the file holds 116"),
    "hostile gz": (_hostile(True), "but the file can hold at most about"),
    "truncated": (_truncated, "is shorter than its header says (96,016 bytes decompressed)"),
    # a label is its class's number: one stray label would make a network of 256 outputs, 253 never trained
    "stray label": (_replaced(NAMES[1], _stray_label),
                    "training labels are 0-1 and 255: as a label is its class's number, they make 256 classes, 253 "
                    "of them without a training image (2-254)"),
    "classes without images": (lambda folder, source: [_replaced(name, lambda v: v[name] * 9)(folder, source)
                                                       for name in (NAMES[1], NAMES[3])],
                               "training labels are 0 and 9: as a label is its class's number, they make 10 "
                               "classes, 8 of them without a training image (1-8)"),
    "file that is a link loop": (_loop, f"The IDX file {{folder}}/{NAMES[0]} is a symbolic link loop"),
}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_bad_idx_folder_is_a_usage_error_naming_what_to_do(problem: str, tmp_path: Path, two_classes) -> None:
    folder = write_folder(tmp_path / "data", two_classes, gzipped=False)
    change, fragment = PROBLEMS[problem]
    change(folder, two_classes)
    with pytest.raises(UsageError, match=re.escape(fragment.format(folder=folder))) as err:
        config.resolve(options={"dataset": f"idx:{folder}"})
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_a_missing_folder_and_no_folder_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="The IDX folder .*/nothing does not exist. Give --dataset idx:DIR"):
        data.get(f"idx:{tmp_path / 'nothing'}")
    with pytest.raises(UsageError, match="idx: needs a folder"):
        data.get("idx:")
    with pytest.raises(UsageError, match=r"Invalid --dataset: must be one of fashion-mnist, digits, shakespeare, idx:DIR, text:FILE_OR_DIR"):
        config.resolve(options={"dataset": "mnist"})


def test_files_changed_after_resolving_are_refused_when_read(tmp_path: Path, two_classes) -> None:
    folder = write_folder(tmp_path / "data", two_classes, gzipped=True)
    before = data.get(f"idx:{folder}")
    write_idx(folder / f"{NAMES[3]}.gz", 1 - two_classes[NAMES[3]])
    with pytest.raises(InitbenchError, match="t10k-labels-idx1-ubyte changed since this run began"):
        before.read(folder, lambda _: None)
    after = data.get(f"idx:{folder}")  # re-read: its stamp changed
    assert after is not before and after.files_sha256[NAMES[3]] != before.files_sha256[NAMES[3]]


def test_compare_and_evaluate_on_an_idx_folder(folders, tmp_path: Path) -> None:
    """Nothing assumes FashionMNIST's 784 inputs and ten classes: a 20x24, two-class folder
    trains, its weights record it, and evaluate finds the data again by the record."""
    out = tmp_path / "run"
    api.compare(["default"], dataset=f"idx:{folders['gz']}", epochs=1, seeds=1, batch_size=50, out=out,
                progress=False)
    weights = checkpoint.load(out / "weights" / "default-seed0.safetensors")
    assert tuple(weights.layers[0][0].shape) == (256, 480)
    assert weights.meta["data"]["files_sha256"] == dict(data.get(f"idx:{folders['gz']}").files_sha256)
    assert api.evaluate(out, progress=False).rows[0]["check"] == "reproduced"


def test_digits_are_scikit_learns_split_fixed_and_stratified() -> None:
    from sklearn.datasets import load_digits

    reference = load_digits()
    arrays = digits.read(Path("unused"))
    test = digits.held_out(torch.from_numpy(reference.target).long())
    train = torch.ones(1797, dtype=torch.bool).index_fill_(0, test, False)
    assert torch.equal(arrays.x_test, torch.from_numpy(reference.data[test.numpy()]).to(torch.uint8))
    assert torch.equal(arrays.x_train, torch.from_numpy(reference.data[train.numpy()]).to(torch.uint8))
    assert torch.equal(arrays.y_train, torch.from_numpy(reference.target[train.numpy()]).long())
    assert torch.equal(torch.bincount(arrays.y_test), torch.full((10,), 36)) and len(arrays.y_train) == 1437
    s = data.load(Path("unused"), DataSettings("digits", classes=(3, 5)))
    assert s.x_train.shape[1] == 64 and s.x_train.max() == 1.0 and set(s.y_train.tolist()) == {0, 1}
    assert torch.equal(torch.bincount(s.y_test), torch.full((2,), 36))


def test_classes_follow_the_dataset() -> None:
    assert config.resolve(options={"dataset": "digits", "classes": "3,5"}).train.data.classes == (3, 5)
    with pytest.raises(UsageError, match=re.escape("'sandal' is not one of Digits's classes: 0, 1, 2, 3, 4, 5, 6")):
        config.resolve(options={"dataset": "digits", "classes": "sandal,shirt"})
    assert data.get("digits").describe((3, 5)) == "3, 5"


@pytest.mark.parametrize("args, fragment", [
    (["--data", "digits", "--classes", "3,12"], "'12' is not one of Digits's class numbers (0 to 9)"),
    (["--data", "idx:/no/such/folder"], "The IDX folder /no/such/folder does not exist"),
])
def test_data_is_an_alias_and_bad_data_is_found_before_torch(args: list[str], fragment: str) -> None:
    code = "import sys; from initbench.cli import main; sys.argv = ['initbench', 'compare', 'rule', *sys.argv[1:]]\n" \
           "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and fragment in " ".join(done.stderr.split()), done.stderr
