"""A registry of named entries of one kind (datasets, networks, engines...): each entry a
choice of the setting of that name, registered once and looked up with an answer in words;
an entry names its code (``loaded``), imported only when it is used."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
        # Parametric names: prefix -> (what follows "prefix:", in words; what makes its entry from it).
        self.families: dict[str, tuple[str, Callable[[str], T]]] = {}

    def register(self, entry: T) -> T:
        """Make ``entry`` a choice of the setting."""
        if entry.name in self:
            raise ValueError(f"a {self.kind} {entry.name!r} is registered already")
        self[entry.name] = entry
        return entry

    def register_family(self, prefix: str, argument: str, make: Callable[[str], T]) -> None:
        """Make every name ``prefix:ARGUMENT`` a choice (idx:DIR: a folder's files), its entry
        ``make(ARGUMENT)``, made when looked up (``make`` caches what is costly to make); the
        entry's name is what its settings keep, and finds it again."""
        if prefix in self.families:
            raise ValueError(f"a {self.kind} family {prefix!r} is registered already")
        self.families[prefix] = (argument, make)

    @property
    def choices(self) -> list[str]:
        """The names as help and errors list them: the registered ones, then each family's."""
        return [*self, *(f"{prefix}:{argument}" for prefix, (argument, _) in self.families.items())]

    def holds(self, name: str) -> bool:
        """Whether ``name`` is a choice: registered, or of a family (its entry not made yet)."""
        prefix, colon, _ = name.partition(":")
        return name in self or bool(colon) and prefix in self.families

    def find(self, name: str) -> T:
        """The entry called ``name``; an error naming the choices and the closest match."""
        prefix, colon, argument = name.partition(":")
        if colon and prefix in self.families and name not in self:
            return self.families[prefix][1](argument)
        if name not in self:
            close = difflib.get_close_matches(name, self.choices, n=1)
            raise UsageError(f"Unknown {self.kind} {name!r}." + (f" Did you mean {close[0]!r}?" if close else "")
                             + f" {self.kind.capitalize()}s: {', '.join(self.choices)}.")
        return self[name]


def loaded(code: str) -> Any:
    """What an entry's ``code`` names, imported now: a module ("package.module") or a name in
    one ("package.module:function"). Entries name their code this way so that registering
    them, and checking a command line, imports neither it nor torch."""
    module, _, name = code.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found
