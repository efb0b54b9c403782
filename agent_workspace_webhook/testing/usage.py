"""A process's memory and descriptors as the kernel counts them, sampled while a test runs, and a
memory limit to run a process under as a Pod's limit would put it (a cgroup of its own: the
kernel kills the process if it needs more and cannot reclaim it)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
CGROUPS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Usage:
    rss: int  # bytes resident now
    peak_rss: int  # the most it has been resident since it started (VmHWM)
    fds: int  # open descriptors


def usage(pid: int) -> Usage:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kib = {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}
    return Usage(kib["VmRSS"], kib["VmHWM"], sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()))


class Sampler:
    """The most descriptors and resident memory `pid` had while in the `with` block, read every
    `interval` seconds (the kernel keeps only the peak of memory, not of descriptors)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_fds = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, KeyError, ValueError):  # the process may be gone
                now = usage(self.pid)
                self.peak_fds, self.peak_rss = max(self.peak_fds, now.fds), max(self.peak_rss, now.rss)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _memory_cgroup_v1(pid: int | str = "self") -> Path | None:
    """The cgroup `pid` runs in under the v1 memory controller, or None."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return CGROUPS / "memory" / path.lstrip("/")
    return None


class MemoryLimit:
    """A memory cgroup of cgroup v1's memory controller: its limit, its peak, its OOM kills.
    `beside()` makes one for a process to join before it runs `serve` (entry()), so that everything
    it allocates is charged to it, removed by remove() once its processes ended (any left are moved
    back first); `of()` reads the one a process already runs in (a container's)."""

    def __init__(self, path: Path | None, limit: int) -> None:
        self.path, self.limit = path, limit

    @classmethod
    def beside(cls, limit: int, name: str) -> MemoryLimit:
        """A limit of `limit` bytes, named `name` under this process's own cgroup (not made yet)."""
        parent = _memory_cgroup_v1()
        return cls(parent / name if parent is not None else None, limit)

    @classmethod
    def of(cls, pid: int) -> MemoryLimit:
        path = _memory_cgroup_v1(pid)
        if path is None:
            raise LookupError(f"process {pid} is in no cgroup v1 memory controller")
        return cls(path, int((path / "memory.limit_in_bytes").read_text()))

    def unavailable(self) -> str | None:
        """Why no limit can be made here, or None."""
        if os.geteuid() != 0:
            return "a memory cgroup needs root"
        if self.path is None or not (self.path.parent / "memory.limit_in_bytes").exists():
            return "no cgroup v1 memory controller to make a limit in (/proc/self/cgroup)"
        return None

    def create(self) -> MemoryLimit:
        assert self.path is not None
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
        return self

    def entry(self) -> tuple[str, ...]:
        """The interpreter's arguments that join this cgroup, then run the package's command line
        in the same process (LocalWebhook's `entry`)."""
        assert self.path is not None
        join = (
            "import os, sys; "
            "open(sys.argv[1], 'w').write(str(os.getpid())); "
            "os.execv(sys.executable, [sys.executable, '-m', 'agent_workspace_webhook', *sys.argv[2:]])"
        )
        return ("-c", join, str(self.path / "cgroup.procs"))

    def _read(self, name: str) -> str:
        assert self.path is not None
        return (self.path / name).read_text()

    @property
    def peak(self) -> int:
        """The most memory charged to the cgroup at once (resident memory and page cache)."""
        return int(self._read("memory.max_usage_in_bytes"))

    @property
    def oom_kills(self) -> int:
        found = re.search(r"^oom_kill (\d+)$", self._read("memory.oom_control"), re.M)
        return int(found.group(1)) if found else 0

    def remove(self) -> None:
        if self.path is None or not self.path.exists():
            return
        for pid in self._read("cgroup.procs").split():
            with contextlib.suppress(OSError):
                (self.path.parent / "cgroup.procs").write_text(pid)
        try:
            self.path.rmdir()
        except OSError as exc:
            print(f"cannot remove {self.path}: {exc}", file=sys.stderr)
