"""What every benchmark script shares: running the installed `rlsd` as a user would, and naming the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def rlsd(*args: str) -> subprocess.CompletedProcess:
    """The `rlsd` console script beside this Python, output captured; raises SystemExit with its error on failure."""
    result = subprocess.run([str(Path(sys.executable).with_name("rlsd")), *args], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return result


def cpu_kind() -> dict:
    """The CPU model and the flags that decide rlsd's CPU precision (figures compare only within one kind)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or "unknown"}
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return {"model": model, **{flag: flag in flags for flag in ("avx512f", "avx512_bf16", "amx_bf16")}}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "cpu": cpu_kind(), "platform": platform.platform(),
            "torch_threads": os.environ.get("OMP_NUM_THREADS"), "date": time.strftime("%Y-%m-%d")}
