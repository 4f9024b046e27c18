"""The one registry mechanism: lazy built-ins, one error listing the choices, a scoped override for tests."""

from __future__ import annotations

import sys

import pytest

from datasets_cards.registry import Registry, UnknownNameError, modules_in


def test_unknown_name_lists_the_choices():
    registry = Registry("widget")
    registry.add("b", 2)
    registry.add("a", 1)
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known: a, b") as info:
        registry.get("c")
    assert isinstance(info.value, ValueError) and info.value.known == ["a", "b"]


def test_builtins_are_listed_without_importing_and_imported_on_first_lookup(tmp_path, monkeypatch):
    package = tmp_path / "plugins_pkg"
    (package / "alpha").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from datasets_cards.registry import Registry, modules_named\n"
        "REGISTRY = Registry('plugin', builtins=modules_named('plugins_pkg', 'impl'))\n")
    (package / "alpha" / "__init__.py").write_text("")
    (package / "alpha" / "impl.py").write_text("from plugins_pkg import REGISTRY\nREGISTRY.add('alpha', 'loaded')\n")
    (package / "beta").mkdir()
    (package / "beta" / "__init__.py").write_text("")  # no impl.py: not a built-in
    monkeypatch.syspath_prepend(str(tmp_path))
    from plugins_pkg import REGISTRY

    assert REGISTRY.names() == ["alpha"] and "plugins_pkg.alpha.impl" not in sys.modules
    assert REGISTRY.get("alpha") == "loaded" and "plugins_pkg.alpha.impl" in sys.modules


def test_modules_in_lists_plain_modules_but_the_excluded_ones():
    assert modules_in("datasets_cards.params", exclude=("base",))() == {
        name: f"datasets_cards.params.{name}" for name in ("future", "gaze", "la", "pixel")
    }


def test_override_is_scoped_to_its_block():
    registry = Registry("widget")
    registry.add("a", 1)
    with registry.override("a", 10), registry.override("new", 2):
        assert registry.get("a") == 10 and registry.get("new") == 2
    assert registry.get("a") == 1 and "new" not in registry
