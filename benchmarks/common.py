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


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": os.environ.get("OMP_NUM_THREADS"),
            "date": time.strftime("%Y-%m-%d")}
