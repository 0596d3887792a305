"""A registry of named entries of one kind (datasets, networks): each entry a choice of
the setting of that name, registered once and looked up with an answer in words."""

from __future__ import annotations

import difflib
from typing import Protocol, TypeVar

from initbench.errors import UsageError


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(dict[str, T]):
    """Name -> entry, in the order registered (a setting's choices, as a parser takes them)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind  # "dataset": what its messages call an entry

    def register(self, entry: T) -> T:
        """Make ``entry`` a choice of the setting."""
        if entry.name in self:
            raise ValueError(f"a {self.kind} {entry.name!r} is registered already")
        self[entry.name] = entry
        return entry

    def find(self, name: str) -> T:
        """The entry called ``name``; an error naming the registered ones and the closest match."""
        if name not in self:
            close = difflib.get_close_matches(name, self, n=1)
            raise UsageError(f"Unknown {self.kind} {name!r}." + (f" Did you mean {close[0]!r}?" if close else "")
                             + f" {self.kind.capitalize()}s: {', '.join(self)}.")
        return self[name]
