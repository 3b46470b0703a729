"""An exclusive lock on an output directory, naming its holder: one writer per directory.

    with DirectoryLock("data/ffhq64", flag="--out"):
        ...  # write into data/ffhq64

The lock is the file ``<directory>/.data_prep.lock`` (``LOCK_NAME``), held with ``fcntl.flock`` for as
long as the writer runs and holding one JSON line ``{"pid", "host", "started", "command"}``:

* a second writer (another process, or another ``DirectoryLock`` in this one) fails at once with
  :class:`~data_prep.errors.OutputLockedError`, one line naming the holder's pid, host, start
  time and command;
* the kernel drops a ``flock`` when its process dies, so a lock file left behind by a killed
  writer is recognised as stale when its pid is no longer running on this host; it is then taken
  over, with one note on stderr naming the dead pid;
* a lock file written on another host whose flock is not held here cannot be checked (its pid
  may be alive there): that is refused, and the message says to delete the file if that job ended.

Release removes the file. Only local directories are locked: ``gs://`` and ``s3://`` have no
exclusive create, and :class:`DirectoryLock` does nothing for them (say so in their docs).
Reusable for any output directory (facevae's run directories): pass ``flag`` for the messages.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys

from data_prep.errors import DataError, OutputLockedError

__all__ = ["LOCK_NAME", "DirectoryLock", "check_output_dir", "pid_running"]

LOCK_NAME = ".data_prep.lock"


def pid_running(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line() -> str:
    """How this process was started, e.g. ``python -m data_prep ffhq --src ...``."""
    first = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    if os.path.basename(first) == "__main__.py":
        first = f"python -m {os.path.basename(os.path.dirname(os.path.abspath(first)))}"
    else:
        first = os.path.basename(first)
    return " ".join([first, *sys.argv[1:]])


def _describe(holder: dict) -> str:
    command = holder.get("command") or "?"
    if len(command) > 120:
        command = command[:117] + "..."
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}: {command}"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        holder = json.loads(data.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        return {"unreadable": True}
    return holder if isinstance(holder, dict) and (not holder or "pid" in holder) else {"unreadable": True}


def check_output_dir(directory: str, flag: str = "--out") -> None:
    """DataError (one line naming ``flag`` and the fix) when ``directory`` cannot be an output folder:
    it is a file, or it (or the folder it would be created in) is not writable. Creates nothing."""
    if "://" in directory:
        return
    path = os.path.abspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise DataError(f"{flag} {directory}: is a file, not a folder; choose a folder path")
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise DataError(f"{flag} {directory}: {probe} is a file, so the folder cannot be created; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK) or not _can_create_in(probe):
        where = "" if probe == path else f" ({probe} is not writable)"
        raise DataError(f"{flag} {directory}: not writable{where}; choose a folder you can write to")


def _can_create_in(folder: str) -> bool:
    """Whether a file can be created in ``folder``: os.access says yes to root everywhere, so try (an unnamed
    O_TMPFILE file where the file system has them, else a temporary name removed at once)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


class DirectoryLock:
    """Exclusive lock of ``directory`` (created if missing) while the ``with`` block runs (module docstring).

    ``flag`` names the option that chose the directory in messages (``--out``, ``--output-dir``);
    ``note`` receives the one-line note printed when a stale lock is taken over (default: stderr).
    """

    def __init__(self, directory: str, *, flag: str = "--out", name: str = LOCK_NAME, note=None):
        self.directory = directory
        self.flag = flag
        self.path = os.path.join(directory, name)
        self.note = note or (lambda text: print(text, file=sys.stderr))
        self._fd: int | None = None

    @property
    def remote(self) -> bool:
        return "://" in self.directory

    def acquire(self) -> "DirectoryLock":
        if self._fd is not None:
            return self
        if self.remote:
            self.note(f"note: {self.flag} {self.directory} is not locked (gs:// and s3:// have no exclusive create); "
                      "run one writer at a time into it")
            return self
        check_output_dir(self.directory, self.flag)
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as error:
            raise DataError(f"{self.flag} {self.directory}: cannot create ({error.strerror}); choose another folder") from None
        for _ in range(10):  # retried only when the file was replaced between open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise DataError(
                    f"{self.flag} {self.directory}: not writable ({error.strerror}); choose a folder you can write to"
                ) from None
            try:
                if self._lock(fd):
                    self._fd = fd
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise OutputLockedError(f"{self.path}: could not take the lock (it keeps changing); retry")

    def _lock(self, fd: int) -> bool:
        """flock ``fd``, check it is still the file at ``self.path``, take over a stale holder; False = retry."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            have_flock = True
        except BlockingIOError:
            raise OutputLockedError(
                f"{self.flag} {self.directory}: in use by another writer ({_describe(_read_holder(fd))}); "
                f"wait for it to finish or choose another {self.flag}"
            ) from None
        except OSError as error:  # a file system without flock: fall back on the pid check alone
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            have_flock = False
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return False
        except FileNotFoundError:
            return False
        holder = _read_holder(fd)
        here = socket.gethostname()
        if holder.get("unreadable"):
            raise DataError(f"{self.path}: exists and is not a lock file this tool wrote; move it out of {self.directory}")
        if holder:
            pid, host = holder.get("pid"), holder.get("host")
            if host != here:
                raise OutputLockedError(
                    f"{self.flag} {self.directory}: locked by {_describe(holder)}, another host, which cannot be "
                    f"checked from here; if that job has ended, delete {self.path}"
                )
            if isinstance(pid, int) and pid_running(pid) and not have_flock:
                raise OutputLockedError(
                    f"{self.flag} {self.directory}: in use by another writer ({_describe(holder)}); "
                    f"wait for it to finish or choose another {self.flag}"
                )
            self.note(f"note: {self.path}: took over a stale lock of {_describe(holder)} (that writer has ended)")
        mine = {
            "pid": os.getpid(),
            "host": here,
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": _command_line(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
