"""Shared helpers: the atomic writer."""

from __future__ import annotations

import os
import stat

import pytest

from simpool.utils import atomic_write_bytes, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_writes_follow_the_umask_like_open(tmp_path, umask_022):
    # mkstemp would give 0o600 whatever the umask; a plain open gives 0o666 & ~0o022 = 0o644
    with open(tmp_path / "plain.txt", "wb") as file:
        file.write(b"x")
    atomic_write_bytes(tmp_path / "atomic.bin", b"x")
    write_json(tmp_path / "report.json", {"a": 1})
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes == {"plain.txt": 0o644, "atomic.bin": 0o644, "report.json": 0o644}


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "file.txt"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and [p.name for p in path.parent.iterdir()] == ["file.txt"]


def test_usable_cpus_reads_the_affinity_and_falls_back_where_there_is_none(monkeypatch):
    import os

    from simpool.utils import usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cpus() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert usable_cpus() == 7
