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


def configure() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    # bitsandbytes tries the optional `kernels` package (which would reach for the hub) and logs its
    # absence on every start; the built-in CPU kernels are used instead, so the message is noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def rlsd_home() -> str:
    return os.path.expanduser(os.environ.get("RLSD_HOME", "~/.cache/rlsd"))
