# Shared by the example scripts (sourced): where rlsd, its Python and the runs live, and a run-name prefix.
HERE="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
ROOT="$(dirname "$HERE")"
RLSD="${RLSD:-$ROOT/.venv/bin/rlsd}"
command -v "$RLSD" >/dev/null 2>&1 || RLSD=rlsd
PYTHON="${PYTHON:-$(dirname "$(command -v "$RLSD")")/python}"
[ -x "$PYTHON" ] || PYTHON=python3
RUNS="${RUNS:-$ROOT/runs}"
ID="${DEMO_ID:-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$RUNS"
