"""Explicit tables for the extension points (losses, activations, datasets, merge methods).

A :class:`Registry` is a read-only mapping from names to entries whose unknown keys raise
:class:`~tvgrad.errors.UnknownKey` naming the kind, the key and the known names. New entries
are added with :meth:`Registry.register` (refused if the name is taken, unless ``replace``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .errors import InvalidInput, UnknownKey

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Mapping[str, T], Generic[T]):
    """A named table of entries of one kind.

    Args:
        kind: what the entries are ("loss", "activation" …), used in error messages.
        entries: the initial entries, in the order they are listed.
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = dict(entries or {})

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownKey(f"unknown {self.kind} {name!r}; choose one of "
                             f"{sorted(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, default=None):
        """The entry of ``name``, or ``default`` if there is none (no error)."""
        return self._entries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; an existing name is refused unless ``replace``."""
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise InvalidInput(f"{self.kind} {name!r} is already registered "
                               f"(pass replace=True to override it)")
        self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, entry: T) -> None:
        """Same as ``register(name, entry, replace=True)``."""
        self.register(name, entry, replace=True)

    def __delitem__(self, name: str) -> None:
        """Remove ``name`` (:class:`UnknownKey` if absent)."""
        self[name]
        del self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
