"""The cache of derived files: a value is built once per key, and anything else in its
place (another key, damage, a value that no longer fits) is built again, never trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from circuitql.cache import CACHE_ENV, cache_dir, cached, content_key


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


class Builder:
    def __init__(self, value: Any) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


def keep(value: Any) -> Any:
    return value


def test_a_value_is_built_once_and_read_back_in_the_form_it_was_first_used(here: Path):
    build = Builder({"tuple": (1, 2), 3: "three"})
    first = cached("thing", "k", build, keep)
    second = cached("thing", "k", build, keep)
    assert build.calls == 1
    assert first == second == {"tuple": [1, 2], 3: "three"}
    assert (here / "thing.json").is_file()


def test_another_key_builds_again_and_replaces_the_file(here: Path):
    cached("thing", "old", Builder(1), keep)
    build = Builder(2)
    assert cached("thing", "new", build, keep) == 2
    assert build.calls == 1
    assert cached("thing", "new", Builder(3), keep) == 2


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\xff\xfe garbage",
        b'{"key": "k"',
        b"[1, 2]",
        b'{"key": "k", "value": ' + b"[" * 100_000,
    ],
)
def test_a_damaged_file_is_built_again(here: Path, damage: bytes):
    (here / "thing.json").write_bytes(damage)
    build = Builder({"a": 1})
    assert cached("thing", "k", build, keep) == {"a": 1}
    assert build.calls == 1
    assert json.loads((here / "thing.json").read_text())["value"] == {"a": 1}


def test_a_kept_value_the_user_rejects_is_built_again(here: Path):
    (here / "thing.json").write_text(json.dumps({"key": "k", "value": "not a number"}))
    assert cached("thing", "k", Builder(41), lambda value: value + 1) == 42


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.chdir(tmp_path)
    build = Builder(1)
    assert cached("thing", "k", build, keep) == 1
    assert cached("thing", "k", build, keep) == 1
    assert build.calls == 2
    assert cache_dir() is None


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # a directory under a file
    assert cached("thing", "k", Builder([1]), keep) == [1]


def test_a_value_json_cannot_hold_fails_when_built(here: Path):
    with pytest.raises(TypeError):
        cached("thing", "k", Builder({1.5: object()}), keep)


def test_keys_tell_their_parts_apart():
    assert content_key("ab", "c") != content_key("a", "bc")
    assert content_key("a") == content_key("a")
