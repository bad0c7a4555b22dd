"""CPU seconds of a process and of each of its threads, from /proc (Linux), for benchmarks that say where the CPU
goes. Threads are grouped by name (``dfer-stage_0``, ``dfer-scan_0``, ONNX Runtime's and MediaPipe's pools, ...);
a thread that ended between two snapshots is missing from the later one, so per-thread figures cover threads
alive at both ends and the process total is read from the process itself."""
from __future__ import annotations

import os
import re
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> float:
    """utime + stime in seconds from a /proc stat file (the command name may hold spaces and parentheses)."""
    text = path.read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_cpu(pid: int) -> float:
    """CPU seconds the process has used so far (all its threads, live or ended)."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (trailing digits folded: a pool's threads count together)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = re.sub(r"[_-]?\d+$", "", (task / "comm").read_text().strip()) or "?"
            out[name] = out.get(name, 0.0) + _stat_cpu(task / "stat")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # the thread ended meanwhile
    return out


def share_of_core(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Per thread name: the fraction of one core it used between two ``thread_cpu`` snapshots ``seconds`` apart."""
    return {name: round((after[name] - before.get(name, 0.0)) / seconds, 3) for name in after
            if after[name] - before.get(name, 0.0) > 0}
