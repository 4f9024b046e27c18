"""One way of choosing by name: pipelines, source formats, model backends, task runners, recipes.

A `Registry` maps names to objects (classes or factories). Entries are added with
the `register` decorator in the module that defines them; *built-ins* are
modules the registry imports on first lookup, so choosing `rlds` imports
TensorFlow only when an RLDS source is read. Built-ins are found by convention
(`modules_named("pipelines.formats", "reader")` lists every
`pipelines/formats/<name>/reader.py`), so adding one is adding a module.
Every unknown name raises the same `UnknownNameError`, listing the choices.

    DETECTORS = Registry("detector backend", builtins={"transformers": "annotators.detection.grounding_dino"})

    @DETECTORS.register("transformers")
    class GroundingDinoDetector: ...

    DETECTORS.get("transformers")  # imports the module, returns the class
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that no registry entry answers to; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}")


def modules_named(package: str, module: str) -> Callable[[], dict[str, str]]:
    """Built-ins by convention: {sub: "package.sub.module"} for every sub-package holding `module`.

    Returned as a function so the scan runs on first lookup, not at import time.
    """

    def scan() -> dict[str, str]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return {}
        found = {}
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            if info.ispkg and importlib.util.find_spec(f"{package}.{info.name}.{module}") is not None:
                found[info.name] = f"{package}.{info.name}.{module}"
        return found

    return scan


def modules_in(package: str, exclude: tuple[str, ...] = ()) -> Callable[[], dict[str, str]]:
    """Built-ins by convention: {name: "package.name"} for every plain module of `package`."""

    def scan() -> dict[str, str]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return {}
        return {
            info.name: f"{package}.{info.name}"
            for info in pkgutil.iter_modules(spec.submodule_search_locations)
            if not info.ispkg and not info.name.startswith("_") and info.name not in exclude
        }

    return scan


class Registry(Generic[T]):
    """Named entries of one kind (see the module docstring)."""

    def __init__(self, kind: str, builtins: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None):
        self.kind = kind
        self._builtins = builtins or {}
        self._entries: dict[str, T] = {}
        self._lock = threading.Lock()  # built-in imports from several threads at once

    def builtins(self) -> dict[str, str]:
        """Built-in name → the module that registers it (not imported)."""
        found = self._builtins() if callable(self._builtins) else self._builtins
        return dict(found)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` over a class or a factory function."""

        def wrap(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return wrap

    def add(self, name: str, obj: T) -> T:
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The entry called `name`, importing its built-in module on first use."""
        if name not in self._entries:
            module = self.builtins().get(name)
            if module is not None:
                with self._lock:
                    importlib.import_module(module)
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name]

    def names(self) -> list[str]:
        """Every name this registry answers to (registered or built in), sorted."""
        return sorted(set(self._entries) | set(self.builtins()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self.builtins()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    @contextmanager
    def override(self, name: str, obj: T) -> Iterator[T]:
        """Register `obj` as `name` inside the block only (the seam tests use instead of patching modules)."""
        had, previous = name in self._entries, self._entries.get(name)
        self._entries[name] = obj
        try:
            yield obj
        finally:
            if had:
                self._entries[name] = previous  # type: ignore[assignment]
            else:
                self._entries.pop(name, None)
