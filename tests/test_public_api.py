import types

import glassbox


def test_all_is_exactly_the_public_api() -> None:
    # Submodules (metrics, health, stack, ...) become attributes once imported; they are
    # namespaces, not names of the curated API.
    public = {
        name
        for name in dir(glassbox)
        if not name.startswith("_") and not isinstance(getattr(glassbox, name), types.ModuleType)
    }
    assert set(glassbox.__all__) == public | {"__version__"}
    assert len(glassbox.__all__) == len(set(glassbox.__all__))  # order: ruff RUF022


def test_version_is_a_release_string() -> None:
    parts = glassbox.__version__.split(".")
    assert len(parts) == 3
    assert all(p.isdigit() for p in parts)
