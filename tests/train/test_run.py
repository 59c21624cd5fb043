"""The run folder: its lock (one run at a time, stale locks taken over) and the saved config read back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from simpool.train import run as run_module
from simpool.train.run import RunFolder, RunLock, RunLockedError


def write_lock(folder: RunFolder, **owner) -> None:
    owner = {"host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00", "token": "other", **owner}
    (folder.path / ".lock").write_text(json.dumps(owner))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_names_this_process_and_goes_on_exit_even_on_an_error(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(KeyError), folder.lock():
        owner = json.loads((folder.path / ".lock").read_text())
        assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname()) and owner["since"]
        raise KeyError("the training failed")
    assert not (folder.path / ".lock").exists()


def test_a_second_run_is_refused_naming_the_first(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with folder.lock():
        with pytest.raises(RunLockedError) as error:
            RunFolder(tmp_path / "run").lock().acquire()  # another run in the same folder (here: this same process)
        message = str(error.value)
        assert f"pid {os.getpid()} on {socket.gethostname()} since " in message and str(folder.path) in message
        assert "\n" not in message and isinstance(error.value, ValueError)
    assert not (folder.path / ".lock").exists()  # the refused run did not remove the first run's lock


def test_a_live_process_holds_the_lock(tmp_path):
    folder = RunFolder(tmp_path / "run")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(folder, pid=process.pid)
        with pytest.raises(RunLockedError, match=f"in use by pid {process.pid} on .* since 2026-01-01"):
            folder.lock().acquire()
    finally:
        process.kill()
        process.wait()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, capsys):
    folder = RunFolder(tmp_path / "run")
    pid = dead_pid()  # a run killed with SIGKILL left its lock behind
    write_lock(folder, pid=pid)
    with folder.lock() as lock:
        assert json.loads((folder.path / ".lock").read_text())["pid"] == os.getpid()
        assert f"took over the stale lock of {folder.path}: pid {pid}" in lock.note
    assert lock.note in capsys.readouterr().err
    assert not (folder.path / ".lock").exists() and [p.name for p in folder.path.iterdir()] == []


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    folder = RunFolder(tmp_path / "run")
    if run_module._process_start(os.getpid()) is None:
        pytest.skip("no /proc: process start times unknown")
    write_lock(folder, pid=os.getpid(), start=-1)  # this pid, but a process started at another time
    with folder.lock() as lock:
        assert lock.note is not None


def test_a_lock_from_another_host_is_not_judged(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_lock(folder, pid=dead_pid(), host="another-node")  # its pid means nothing here
    with pytest.raises(RunLockedError, match=r"on another-node .* delete .*\.lock"):
        folder.lock().acquire()


def test_an_old_unreadable_lock_is_stale_and_a_fresh_one_is_awaited(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    (folder.path / ".lock").write_text("")  # a crash between creating the file and writing it
    monkeypatch.setattr(RunLock, "UNREADABLE_GRACE_S", 0.0)
    with folder.lock() as lock:
        assert "unreadable lock file" in lock.note


def test_release_leaves_a_lock_it_no_longer_holds(tmp_path):
    folder = RunFolder(tmp_path / "run")
    lock = folder.lock()
    lock.acquire()
    write_lock(folder, pid=12345, token="newer")  # someone judged it stale and took it over
    lock.release()
    assert json.loads((folder.path / ".lock").read_text())["token"] == "newer"


def test_only_the_main_process_locks(tmp_path):
    RunFolder(tmp_path / "run")  # rank 0 made the folder
    with RunFolder(tmp_path / "run", is_main=False).lock():
        assert not (tmp_path / "run" / ".lock").exists()


def test_read_config_gives_the_saved_config(tmp_path):
    from simpool.train.config import load_config, to_dict
    from simpool.train.supervised.config import SupervisedConfig

    folder = RunFolder(tmp_path / "run")
    assert folder.read_config() is None
    config = load_config(SupervisedConfig, None, ["optim.lr=0.25"])
    folder.write_config(config)
    assert folder.read_config() == to_dict(config)


def test_every_rank_raises_rank_0s_lock_refusal(tmp_path, monkeypatch):
    import torch
    import torch.distributed as dist

    from simpool.train.distributed import DistInfo

    def broadcast_object_list(box, src=0):  # rank 0 found the folder locked
        box[0] = "run folder /x is in use by pid 7 on node0 since 2026-01-01T00:00:00+00:00"

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    rank1 = DistInfo(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    RunFolder(tmp_path / "run")
    with pytest.raises(RunLockedError, match="in use by pid 7 on node0"):
        RunFolder(tmp_path / "run", is_main=False).lock(rank1).acquire()
