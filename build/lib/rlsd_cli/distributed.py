"""Several processes through Accelerate: `rlsd --num-processes N <verb> ...` relaunches itself under
`accelerate launch`; Trainer and TRL then shard the data, all-reduce the gradients and gather the logged metrics.

What is ours is only who writes: rank 0 owns the run folder (run.json, metrics, adapter, summary, evaluation),
every other rank trains and writes nothing. Trainer already saves checkpoints from rank 0 only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time

from .errors import BadInputError

LAUNCHED = "RLSD_LAUNCHED"
RUN_STAMP = "RLSD_RUN_STAMP"  # one default run name for every rank (each would read its own clock)
EXIT_FILE = "RLSD_EXIT_FILE"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def per_process_share(total: int, what: str) -> int:
    """Each process's share of `total` items per optimizer step (`what` names the flags that set it for the
    error): the step's batch means the same whatever the number of processes."""
    if total % world_size():
        raise BadInputError(f"{what} ({total}) must divide evenly among --num-processes {world_size()}")
    return total // world_size()


def wait_for_everyone() -> None:
    """A barrier across ranks (no-op in one process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(num_processes: int, argv: list[str]) -> list[str]:
    """`accelerate launch` running this same command line in `num_processes` processes (on the CPU: gloo)."""
    # --multi_gpu is accelerate's torchrun launcher; without GPUs the ranks join over gloo on the CPU (its --cpu
    # launcher would need MPI for more than one process).
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "-m", "rlsd_cli.cli", *argv]


def relaunch(num_processes: int, argv: list[str]) -> int:
    """Run `argv` (without --num-processes) under accelerate launch and return the workers' exit code.

    The workers' status lines pass through. When one fails, its one-line `rlsd: error:` is shown once and the
    launcher's own traceback (it reports a failed child at length) is dropped: bad input stays one line, exit 2.

    Ctrl-C and SIGTERM go to the workers themselves, as Ctrl-C: each finishes its step, they agree on the step to
    stop at, rank 0 saves the checkpoint, and they exit 130. The launcher is kept out of the terminal's signals:
    it would give the workers 30 seconds before killing them, less than a step and its checkpoint may take.
    """
    import signal
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rlsd-launch-") as tmp:
        exit_file = os.path.join(tmp, "exit-code")
        env = dict(os.environ, **{LAUNCHED: "1", RUN_STAMP: time.strftime("%Y%m%d-%H%M%S"), EXIT_FILE: exit_file})
        # Each process gets its share of the cores, not all of them (oversubscription slows every rank down).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
        process = subprocess.Popen(launch_command(num_processes, argv), env=env, stderr=subprocess.PIPE, text=True,
                                   bufsize=1, start_new_session=True)

        def forward(signum, frame):
            workers = worker_pids(tmp)
            for pid in workers or [process.pid]:  # before the workers start, the launcher stops them
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            failed = False
            for line in process.stderr:
                if failed:
                    continue
                if line.startswith("rlsd: error:"):
                    failed = True
                sys.stderr.write(line)
                sys.stderr.flush()
            launcher_code = process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        try:
            with open(exit_file, encoding="utf-8") as handle:
                return int(handle.read().strip() or launcher_code)
        except (OSError, ValueError):
            return launcher_code


def register_worker() -> None:
    """Leave this worker's pid beside the exit file, so the launching process can pass it Ctrl-C."""
    path = os.environ.get(EXIT_FILE)
    if path:
        with open(os.path.join(os.path.dirname(path), f"worker-{os.environ.get('RANK', '0')}.pid"), "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))


def worker_pids(folder: str) -> list[int]:
    pids = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("worker-") and name.endswith(".pid"):
            with contextlib.suppress(OSError, ValueError), open(os.path.join(folder, name), encoding="utf-8") as handle:
                pids.append(int(handle.read().strip()))
    return pids


def any_process(flag: bool, device) -> bool:
    """Whether `flag` is set on any process. A stop must end every process after the same step: one that went on
    would wait forever in the next step's gradient all-reduce."""
    if world_size() == 1:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def record_exit_code(code: int) -> None:
    """A worker's exit code for the launching process (the launcher itself only says that a child failed)."""
    path = os.environ.get(EXIT_FILE)
    if path and not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(code))
