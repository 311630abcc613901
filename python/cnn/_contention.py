"""Fewer threads while other processes keep the cores busy.

A parallel region waits for its slowest thread. When another process holds a core, the thread that
shares it runs only in the gaps the scheduler leaves, and every region waits for it; libgomp's spinning
threads (about 4 ms before they sleep) make it worse, since a waiting thread holds a core its own team
needs. On the 2-vCPU VM of benchmarks/contention.py, with one core kept busy, a 2-thread fit took
1.4-3.3x (MLP) and 2.5-23x (LeNet-5) the time of a 1-thread fit. Waiting passively (sleeping at once)
fixes that but costs a wake-up at every region on an idle machine, where LeNet-5 then lost its whole
2-thread speed-up. So cnn keeps libgomp's spin and adapts the thread count instead: while a fit runs,
every INTERVAL seconds the CPU time the machine gave to other processes (all CPUs' busy time in
/proc/stat, less this process's own) says how many cores are free, and the fitting thread's kernels use
no more threads than that (`_core._cap_threads`, which limits that thread only and is lifted when the fit
ends). A core counts as taken once others use more than a quarter of it. The first decision of a fit
uses the window since the previous one (or since `import cnn`), so a fit on a busy machine starts capped.

Linux only (/proc/stat); elsewhere, or with CNN_ADAPT_THREADS=0, nothing changes."""
import math
import os
import time

from . import _core

INTERVAL = 0.25  # seconds between looks at /proc/stat: a few µs each, ~0.01% of a fit
TAKEN = 0.25  # others' use of a core above which it no longer counts as free


def free_cores(cpus, others):
    """The cores a team may use when other processes used `others` cores' worth of CPU time (at least 1)."""
    return max(1, min(cpus, cpus - math.ceil(others - TAKEN)))


def _machine_busy_seconds():
    """CPU seconds all CPUs spent busy since boot: user, nice, system, irq, softirq and steal."""
    with open("/proc/stat", "rb") as f:
        ticks = f.readline().split()[1:9]  # cpu user nice system idle iowait irq softirq steal
    return sum(int(ticks[i]) for i in (0, 1, 2, 5, 6, 7)) / _TICKS


def _sample():
    own = os.times()
    return time.monotonic(), _machine_busy_seconds(), own.user + own.system


class Governor:
    """The process's view of how busy the machine is; one per process, shared by every fit."""

    def __init__(self):
        self.cpus = len(os.sched_getaffinity(0))
        self.last = _sample()
        self.free = self.cpus

    def update(self):
        """Free cores over the window since the last look (at most every INTERVAL seconds). No lock: a
        Ctrl-C may land anywhere in a fit, and a lock it left held would stop every later fit; two fits
        looking at once only measure one window twice."""
        last = self.last
        if time.monotonic() - last[0] >= INTERVAL:
            sample = _sample()
            others = ((sample[1] - last[1]) - (sample[2] - last[2])) / (sample[0] - last[0])
            self.last, self.free = sample, free_cores(self.cpus, others)
        return self.free


class ThreadCap:
    """Caps the calling thread's kernels at the free cores during a fit: `tick()` per batch, `close()` after."""

    def __init__(self):
        self.requested = _core.get_num_threads()
        self.active = _GOVERNOR is not None and self.requested > 1
        self.next = 0.0
        self.applied = 0
        self.tick()

    def tick(self):
        if not self.active or time.monotonic() < self.next:
            return
        self.next = time.monotonic() + INTERVAL
        free = _GOVERNOR.update()
        cap = free if free < self.requested else 0
        if cap != self.applied:
            _core._cap_threads(cap)
            self.applied = cap

    def close(self):
        if self.applied:
            _core._cap_threads(0)
            self.applied = 0


def _governor():
    if os.environ.get("CNN_ADAPT_THREADS") == "0" or not _core.HAVE_OPENMP or not hasattr(os, "sched_getaffinity"):
        return None
    try:
        _machine_busy_seconds()
    except (OSError, ValueError, IndexError):
        return None
    return Governor()


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_GOVERNOR = _governor()
