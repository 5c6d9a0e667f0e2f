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
    # On CPUs with AVX512-BF16 that attempt goes through `kernels`, which warns offline that it skips a publisher
    # check: a second line before every one-line error.
    logging.getLogger("kernels").setLevel(logging.ERROR)
    # math-verify logs "Timeout during comparison" for answers too large to compare (9**9**9**9); the comparison
    # scores 0, which is the verdict, so the line is noise in the middle of a progress bar.
    logging.getLogger("math_verify.grader").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


# rlsd overrides private methods of TRL's trainers (GRPOTrainer._generate_and_score_completions and
# _calculate_rewards, DistillationTrainer._compute_loss, Trainer._load_from_checkpoint and _track_num_input_tokens),
# which change between TRL releases: only the releases tested are allowed. Keep in step with pyproject.toml.
SUPPORTED_TRL = ">=1.16,<1.17"


def require_supported_trl() -> None:
    """Stop with one line, before any model work, when the installed TRL is outside the tested range."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.specifiers import SpecifierSet

    from .errors import BadInputError

    try:
        installed = version("trl")
    except PackageNotFoundError:
        installed = None
    if installed is None or not SpecifierSet(SUPPORTED_TRL).contains(installed, prereleases=True):
        raise BadInputError(f"TRL {installed or '(not installed)'} is installed, but rlsd's trainers support trl{SUPPORTED_TRL} "
                            f"only (they extend private TRL methods); run: pip install 'trl{SUPPORTED_TRL}'")


def rlsd_home() -> str:
    # An empty RLSD_HOME= counts as unset: as a path it would be the current folder, filled with models unasked.
    home = os.path.expanduser(os.environ.get("RLSD_HOME") or "~/.cache/rlsd")
    if os.path.exists(home) and not os.path.isdir(home):
        # Refused where it is read, so a command that only lists (models list) does not show an empty cache in it.
        from .errors import BadInputError

        raise BadInputError(f"RLSD_HOME={home}: is a file, not a folder; point RLSD_HOME at a folder (or unset it)")
    return home
