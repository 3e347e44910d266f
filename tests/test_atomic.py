"""Atomic writes: on disk before they replace the old file; nothing half-written left."""

from __future__ import annotations

import os

import pytest

from metrics.atomic import atomic_path


def test_a_write_is_on_disk_before_it_replaces_the_old_content(tmp_path, monkeypatch):
    events, replace = [], os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync"))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or replace(a, b))
    target = tmp_path / "a.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert events == ["fsync", "replace"] and target.read_text() == "new"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
