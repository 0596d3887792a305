"""Why a path named on the command line cannot be used, in words, found without opening it.

One function decides for every path initbench is given (a config, weights, a run folder
and its files, an output or data folder): ``problem`` looks at the path with ``stat``
alone, because opening a FIFO would wait forever for a writer and opening a device reads
it. Nothing here imports torch: the command line checks its paths before any work.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Literal

Expected = Literal["file", "folder"]
# What a page, an XML file or a terminal line must not carry raw: control characters (but tab,
# newline and carriage return), DEL and the C1 controls, lone surrogates (Python's stand-ins for a
# file name's bytes that are not UTF-8), U+FFFE and U+FFFF.
_UNSHOWN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind(mode: int) -> str:
    """What a file of ``mode`` (os.stat's st_mode) is, in words: "a folder", "a FIFO (named pipe)"..."""
    return next((name for test, name in KINDS if test(mode)), "a special file")


def problem(path: Path, expected: Expected | None = None, missing_ok: bool = False) -> str | None:
    """Why ``path`` cannot be used as ``expected`` (a regular "file", a "folder", or None:
    anything that exists), as words that follow its name ("does not exist", "is a symbolic
    link loop...", "is not a regular file: it is a FIFO (named pipe)"); None when it can be
    used, or when it does not exist and ``missing_ok`` (an output to be made). Links are followed."""
    try:
        found = path.stat()
    except OSError as e:
        return _unreachable(path, e, missing_ok)
    if expected == "folder" and not stat.S_ISDIR(found.st_mode):
        return f"is {kind(found.st_mode)}, not a folder"
    if expected == "file" and not stat.S_ISREG(found.st_mode):
        return f"is not a regular file: it is {kind(found.st_mode)}"
    return None


def _unreachable(path: Path, e: OSError, missing_ok: bool) -> str | None:
    if e.errno == errno.ELOOP:
        if path.is_symlink():
            return "is a symbolic link loop: following its links never reaches a file or folder"
        return "lies under a symbolic link loop: following the links above it never reaches a folder"
    if e.errno == errno.ENOENT:
        if missing_ok:  # a link to nothing yet included: what is made goes where it leads
            return None
        if path.is_symlink():
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "does not exist"
    if e.errno == errno.ENOTDIR:
        above = next(p for p in path.parents if p.exists())  # the nearest one that is there: not a folder
        return f"cannot exist: {above} is {kind(above.stat().st_mode)}, not a folder"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "cannot be reached: a folder above it does not let you in (permission denied)"
    return f"cannot be used ({e.strerror})"


def shown(text: str | os.PathLike[str]) -> str:
    """``text`` (a path, or a page naming paths) as it can be shown or written as UTF-8: what
    must not be carried raw written as Python writes it (a folder named "a\\x1bb" stays
    recognizable), a file name's byte that is not UTF-8 as that byte (\\xff)."""
    def escaped(found: re.Match[str]) -> str:
        code = ord(found[0])
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else ascii(found[0])[1:-1]
    return _UNSHOWN.sub(escaped, os.fspath(text))
