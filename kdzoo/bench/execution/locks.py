"""Run locks: an exclusive ``flock`` on ``runs/<hash>/.lock`` while a process trains the run.

The kernel drops a lock when its holder ends, even by SIGKILL, so a lock is never left
behind by a dead sweep. (On network filesystems this needs working ``flock``, as on NFSv4
and Lustre mounted with ``flock``.) The lock file also says who holds it
(``HOST pid PID since TIME``), so a process that waits can name the holder, tell whether
it is stopped (Ctrl-Z, SIGSTOP) or gone (its lock kept by a process it started), and give
up on such a holder after a stated time instead of waiting forever.
"""
from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

LOCK_PATIENCE = 120.0    # seconds a stopped or vanished holder is waited for before the run is given up
LOCK_POLL = 1.0          # seconds between two looks at a held lock
_HOLDER = re.compile(r"(\S+) pid (\d+) since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_TIME = "%Y-%m-%d %H:%M:%S"


class RunLock:
    """An exclusive ``flock`` on one run's lock file; release it (or let the process end) to free the run."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover (safety net)
        try:
            self.release()
        except Exception:
            pass


def flock(path: Path, blocking: bool) -> int | None:
    """An fd holding the exclusive lock on ``path`` (created if need be), or None when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def take(path: Path, blocking: bool = False, note: str = "") -> RunLock | None:
    """Take the lock at ``path`` and write who holds it; None when another process holds it."""
    fd = flock(path, blocking)
    if fd is None:
        return None
    try:  # who holds it, for people and processes looking at the folder; the lock itself is the flock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()} since {time.strftime(_TIME)}"
                      f"{' ' + note if note else ''}\n".encode(), 0)
    except OSError:
        pass
    return RunLock(path, fd)


def is_held(path: Path) -> bool:
    if not path.exists():
        return False
    fd = flock(path, blocking=False)
    if fd is None:
        return True
    RunLock(path, fd).release()
    return False


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: str

    def state(self) -> str:
        """running | stopped (Ctrl-Z, SIGSTOP) | gone (ended) | elsewhere (another host: cannot look)."""
        if self.host != socket.gethostname():
            return "elsewhere"
        try:
            text = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return "gone" if Path("/proc/self/stat").exists() else _signal_state(self.pid)
        except OSError:
            return "running"
        code = text[text.rindex(")") + 2]
        return "stopped" if code in "Tt" else "gone" if code in "ZX" else "running"

    def age(self) -> str:
        try:
            seconds = max(time.time() - time.mktime(time.strptime(self.since, _TIME)), 0)
        except ValueError:
            return "?"
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
            f"{seconds / 3600:.1f} h"


def _signal_state(pid: int) -> str:
    """Without /proc: only whether the process exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass
    return "running"


def holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path``, as its file says (None when it says nothing readable)."""
    try:
        m = _HOLDER.match(path.read_text(errors="replace"))
    except OSError:
        return None
    return Holder(m.group(1), int(m.group(2)), m.group(3)) if m else None


def _waiting(who: Holder | None, state: str, patience: float) -> str:
    if who is None:
        return "held by another process"
    where = f"pid {who.pid} on {who.host}, since {who.since} ({who.age()} ago)"
    if state == "stopped":
        return f"held by {where}, which is stopped (Ctrl-Z or SIGSTOP); giving up in {patience:.0f} s unless it resumes"
    if state == "gone":
        return (f"held although {where.split(',')[0]} has ended (a process it started keeps the lock); "
                f"giving up in {patience:.0f} s")
    return f"held by {where}"


def _giving_up(who: Holder, state: str, path: Path, patience: float) -> str:
    if state == "stopped":
        return (f"gave up after {patience:.0f} s: its lock is held by pid {who.pid}, which is stopped; resume it "
                f"(fg, or kill -CONT {who.pid}) or end it, then run the same command again")
    return (f"gave up after {patience:.0f} s: pid {who.pid}, which took its lock, has ended, but a process it "
            f"started still holds {path}; end that process, then run the same command again")


def wait_free(path: Path, *, patience: float = LOCK_PATIENCE, report: Callable[[str], None] | None = None,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Wait until no process holds the lock at ``path``; None then. A holder that trains is waited for as
    long as it takes; one that stays stopped or gone for ``patience`` seconds is given up on: the
    returned message says who holds the lock and what to do. ``report`` hears who holds it, each time
    that changes."""
    stalled, told = None, None
    while is_held(path):
        who = holder(path)
        state = who.state() if who is not None else "running"
        if report is not None and (who, state) != told:
            report(_waiting(who, state, patience))
            told = (who, state)
        if who is not None and state in ("stopped", "gone"):
            stalled = clock() if stalled is None else stalled
            if clock() - stalled >= patience:
                return _giving_up(who, state, path, patience)
        else:
            stalled = None
        sleep(LOCK_POLL)
    return None


__all__ = ["LOCK_PATIENCE", "Holder", "RunLock", "flock", "holder", "is_held", "take", "wait_free"]
