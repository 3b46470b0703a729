"""An exclusive lock on an output directory: a lock file holding the holder's pid, host and start time.

    with DirectoryLock(out, what="data_prep"):      # or lock = DirectoryLock(...).acquire(); lock.release()
        ...write into out...

The lock file (``.lock`` by default) is created with O_CREAT | O_EXCL, so of two writers exactly one gets it;
the other gets ``LockHeld`` whose message names the holder (pid, host, command, since when) and the file to
delete if that holder is gone. A lock left by a dead process on this host (its pid no longer runs) is stale:
it is taken over, and ``acquire`` returns a note saying so. A lock from another host cannot be checked and is
never taken over. Pure standard library (no TensorFlow); local directories only.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

__all__ = ["LockHeld", "DirectoryLock", "LOCK_NAME"]

LOCK_NAME = ".lock"


class LockHeld(RuntimeError):
    """Another live writer holds the directory's lock; the message names it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(holder: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    command = holder.get("command")
    return (f"pid {holder.get('pid')} on {holder.get('host')}" + (f" ({command})" if command else "")
            + f" since {since}")


class DirectoryLock:
    """Exclusive lock on ``directory`` through ``directory/name``; ``what`` names the kind of writer."""

    def __init__(self, directory: str, what: str = "", name: str = LOCK_NAME):
        self.directory = directory
        self.path = os.path.join(directory, name)
        self.what = what
        self.held = False
        self.note: str | None = None

    def _read(self) -> dict | None:
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written right now, or garbage

    def acquire(self) -> "DirectoryLock":
        """Take the lock or raise LockHeld; a stale lock of this host is taken over (see ``note``)."""
        os.makedirs(self.directory, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
              "command": self.what or " ".join(os.path.basename(a) for a in sys.argv[:3])}
        for attempt in range(3):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if holder is None:
                    continue  # released meanwhile: try again
                if holder == {}:
                    # unreadable: a writer between O_EXCL and its write, or a crash in between; give it a moment
                    time.sleep(0.2)
                    holder = self._read()
                    if holder is None:
                        continue
                    if holder == {} and time.time() - os.path.getmtime(self.path) > 5:
                        holder = {"pid": -1, "host": me["host"]}
                if holder and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                    self.note = f"took over the stale lock {self.path} of {_describe(holder)}, which is gone"
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                raise LockHeld(f"{self.directory} is in use by {_describe(holder or {})}; wait for it to finish, "
                               f"or delete {self.path} if that process is gone") from None
            with os.fdopen(handle, "w") as out:
                json.dump(me, out)
                out.flush()
                os.fsync(out.fileno())
            self.held, self._me = True, me
            return self
        raise LockHeld(f"could not take the lock {self.path}: it keeps changing hands")

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if not self.held:
            return
        self.held = False
        holder = self._read()
        if holder and holder.get("pid") == self._me["pid"] and holder.get("started") == self._me["started"]:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
