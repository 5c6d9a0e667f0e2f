"""Process-wide settings that must be in place before transformers, TRL or the hub client are imported."""

import logging
import os
import warnings

_DEFAULTS = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def tune_malloc() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel (glibc only).

    Each training step allocates the (batch, length, vocabulary) logits and their gradients, hundreds of MB;
    by default glibc maps such blocks fresh from the kernel every time and the page faults dominate. Measured
    on SmolLM2-135M + LoRA, batch 8 x 256: 7.0 -> 4.7 s per step, system time halved.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    if os.environ.get("RLSD_MALLOC_TUNE", "1") == "0":
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, (1 << 31) - 1))


def configure() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    tune_malloc()
    # bitsandbytes tries the optional `kernels` package (which would reach for the hub) and logs its
    # absence on every start; the built-in CPU kernels are used instead, so the message is noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def rlsd_home() -> str:
    return os.path.expanduser(os.environ.get("RLSD_HOME", "~/.cache/rlsd"))
