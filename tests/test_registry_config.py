"""The generic registry and settings loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.config import load_settings
from curator.registry import Registry, UnknownNameError


def test_registry_register_create_and_list() -> None:
    registry: Registry[object] = Registry("thing")

    @registry.register("b")
    class B:
        def __init__(self, x: int = 1) -> None:
            self.x = x

    registry.register("a")(dict)
    assert registry.names() == ["a", "b"]
    assert registry.create("b", x=3).x == 3  # type: ignore[attr-defined]
    assert "a" in registry and "z" not in registry


def test_registry_duplicate_and_unknown_names() -> None:
    registry: Registry[object] = Registry("thing")
    registry.register("a")(dict)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(list)
    with pytest.raises(UnknownNameError, match="valid names: a"):
        registry.get("nope")


@pytest.mark.sqlite_only  # checks the SQLite file / the one-server rule of SQLite
def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sample_fps: 3.0\nmax_side: 640\nseed: 5\n")
    monkeypatch.setenv("CURATOR_MAX_SIDE", "320")
    settings = load_settings(config, seed=9)
    assert settings.sample_fps == 3.0  # from the file
    assert settings.max_side == 320  # environment beats the file
    assert settings.seed == 9  # explicit override beats both
    assert settings.resolved_database_url.startswith("sqlite:///")


def test_settings_reject_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sample_fsp: 3.0\n")
    with pytest.raises(ValueError, match="unknown settings"):
        load_settings(config)


def test_shipped_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import yaml

    for name in [n for n in os.environ if n.startswith("CURATOR_")]:
        monkeypatch.delenv(name)  # the files' own values, not the environment's
    root = Path(__file__).resolve().parents[1] / "configs"
    paths = sorted(root.glob("*.yaml"))
    assert {"default.yaml", "fast.yaml"} <= {p.name for p in paths}
    for path in paths:
        settings = load_settings(path)
        values = yaml.safe_load(path.read_text())
        assert values, path
        for key, value in values.items():  # every value in the file is the one the settings carry
            got = getattr(settings, key)
            assert (got == Path(value) if isinstance(got, Path) else got == value), (path.name, key, value, got)
