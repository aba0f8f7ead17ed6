"""Derived data kept on disk (engine.language.derived): built once per source file, rebuilt when anything about it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.language.derived import cache_dir, remembered
from engine.language.translate import Cedict


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "voice2anime"


def test_built_once_then_loaded_and_rebuilt_when_the_source_changes(tmp_path: Path, private_cache: Path) -> None:
    source = tmp_path / "words.txt"
    source.write_text("cat dog")
    builds: list[str] = []

    def build() -> dict[str, tuple[str, ...]]:
        builds.append(source.read_text())
        return {"words": tuple(source.read_text().split())}

    assert remembered("words", source, build) == {"words": ("cat", "dog")}
    assert remembered("words", source, build) == {"words": ("cat", "dog")}
    assert len(builds) == 1 and cache_dir() == private_cache and len(list(private_cache.iterdir())) == 1
    source.write_text("cat dog fox")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert remembered("words", source, build) == {"words": ("cat", "dog", "fox")}
    assert len(builds) == 2


def test_a_damaged_or_unwritable_cache_only_costs_time(tmp_path: Path, private_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "words.txt"
    source.write_text("cat")
    remembered("words", source, lambda: ["cat"])
    (kept,) = private_cache.iterdir()
    kept.write_bytes(b"\x00not marshal")
    assert remembered("words", source, lambda: ["rebuilt"]) == ["rebuilt"]
    assert "unreadable" in caplog.text
    for entry in private_cache.iterdir():
        entry.unlink()
    private_cache.rmdir()
    private_cache.write_text("a file where the cache directory should be")  # cannot be written, even by root
    assert remembered("words", source, lambda: ["built"]) == ["built"]
    assert remembered("words", source, lambda: ["built again"]) == ["built again"]


def test_cedict_loads_the_same_dictionary_from_the_cache() -> None:
    first = Cedict()
    assert first.gloss("月球") is not None and "fox" in first.vocabulary
    again = Cedict()  # another process, as far as the dictionary knows: the cache answers
    assert again.gloss("月球") == first.gloss("月球") and again.vocabulary == first.vocabulary
    assert again.pinyin("月球") == first.pinyin("月球")
