"""The ``simpool`` commands of the docs' bash blocks, run by a server that has imported torch, timm and simpool once.

A fresh ``simpool`` process spends seconds importing torch and timm before it does anything, and the docs' bash
blocks run about a hundred of them. :func:`serve` (``python tests/command_server.py SOCKET``) imports them once,
then for each connection on the Unix socket ``SOCKET`` forks a child that runs ``simpool ARGS`` as the console
script would: in the caller's working folder, with its environment and its own stdin, stdout and stderr (passed
over the socket), answering with the child's exit code. In a bash block, ``simpool`` is the small client of
:data:`SHIM` (a Python without ``site``: no import but the standard library's), first on ``PATH``; where no server
is named (``SIMPOOL_COMMAND_SERVER`` unset) or it cannot be reached, the client runs the real ``simpool``.

The child is what a fresh process would be but for the imports: nothing ran in the server before the fork (no
thread pool was started, no random number drawn), and the environment variables that torch reads at import
(``OMP_NUM_THREADS``) are the server's, the same as every block's. A command whose client goes away (a block
that timed out) is killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

VARIABLE = "SIMPOOL_COMMAND_SERVER"
SERVED = "served.jsonl"  # beside the socket: the arguments of every command the server ran, one JSON list a line
# The client: ``simpool ARGS`` through the server, or the real console script without one. Formatted with the
# interpreter (``python``) and the real script (``real``).
SHIM = """#!{python} -S
import json, os, socket, sys
path = os.environ.get("{variable}")
try:
    if not path:
        raise OSError("no server")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(path)
except OSError:
    os.execv({real!r}, [{real!r}, *sys.argv[1:]])
request = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}
socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
answer = client.recv(16)
sys.exit(int(answer) if answer else 1)
"""


def write_shim(folder: Path) -> Path:
    """``folder/simpool``, the client of a server (executable); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    real = Path(sys.executable).parent / "simpool"
    shim = folder / "simpool"
    shim.write_text(SHIM.format(python=sys.executable, variable=VARIABLE, real=str(real)))
    shim.chmod(0o755)
    return folder


def serve(path: str) -> NoReturn:
    """Import simpool (and torch and timm), listen on ``path``, print ``ready``, then run one command per
    connection, one at a time, until killed; each command's arguments are added to :data:`SERVED`."""
    import matplotlib.pyplot  # noqa: F401  (most commands draw)

    import simpool.cli  # noqa: F401  (torch and timm with it: the seconds a fresh process spends)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(8)
    log = Path(path).with_name(SERVED)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        with connection:
            message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
            request = json.loads(message)
            with log.open("a") as served:
                served.write(json.dumps(request["argv"]) + "\n")
            pid = os.fork()
            if pid == 0:
                listener.close()
                _run_command(request, fds)
            for fd in fds:
                os.close(fd)
            code = _wait(pid, connection)
            try:
                connection.send(str(code).encode())
            except OSError:  # the client went away
                pass


def _wait(pid: int, connection: socket.socket) -> int:
    """The exit code of child ``pid`` as a shell gives it (128 + signal when killed); the child is killed when the
    client closes its end first."""
    connection.setblocking(False)
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        try:
            gone = connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            gone = False
        if gone:
            os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    code = os.waitstatus_to_exitcode(status[1])
    return 128 - code if code < 0 else code


def exit_in_child(work: Callable[[], int]) -> NoReturn:
    """In a forked child: run ``work`` and leave with its exit code, as the interpreter would give it (a
    ``SystemExit`` of None is 0, of a message is 1 with the message printed; an exception prints its traceback and is
    1), after flushing stdout and stderr; ``os._exit``, so nothing of the parent runs at exit."""
    code = 1
    try:
        code = work()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
        if not isinstance(exit.code, int | None):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def _run_command(request: dict, fds: list[int]) -> NoReturn:
    """In the forked child: ``simpool ARGV`` in the request's folder and environment, on the caller's stdio."""

    def work() -> int:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["simpool", *request["argv"]]
        from simpool.cli import main

        return main(request["argv"])

    exit_in_child(work)


if __name__ == "__main__":
    serve(sys.argv[1])
