#!/usr/bin/env bash
# RLSD against GRPO on generated arithmetic word problems with the embedded SmolLM2-135M, as a CI gate would run it:
#   rlsd data math -> rlsd reason --algo grpo -> rlsd reason --algo rlsd (same recipe, same seed)
# then both held-out accuracy curves in one PNG and a table. Exits 1 when RLSD or GRPO did not raise held-out
# accuracy over the base model. Runs are new folders under $RUNS (never overwritten).
#
#   examples/reasoning.sh
#   RLSD=rlsd RUNS=runs STEPS=40 PARALLEL=1 examples/reasoning.sh   # PARALLEL=1: both runs at once, one thread each
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
DATA="${DATA:-$RUNS/arith-data}"
STEPS="${STEPS:-40}"
[ -f "$DATA/train.jsonl" ] || "$RLSD" data math --n 1000 --max-steps 1 --test-fraction 0.1 --seed 0 --out "$DATA" >&2

run() {  # run ALGO: one reason run with the shipped CPU recipe
  "$RLSD" reason --data "$DATA" --recipe cpu-reason --algo "$1" --steps "$STEPS" \
    --runs-dir "$RUNS" --name "reason-$ID-$1" --json > "$RUNS/.reason-$ID-$1.json"
}
if [ "${PARALLEL:-0}" = 1 ]; then
  OMP_NUM_THREADS=1 run grpo & grpo=$!
  OMP_NUM_THREADS=1 run rlsd & rlsd=$!
  # One failed run stops the other (and Ctrl-C stops both): nothing keeps training unwatched.
  trap 'kill $grpo $rlsd 2>/dev/null || true' EXIT
  wait $grpo && wait $rlsd
  trap - EXIT
else
  run grpo
  run rlsd
fi

"$RLSD" runs plot "$RUNS/reason-$ID-rlsd" "$RUNS/reason-$ID-grpo" --metric eval/math/accuracy \
  --out "$RUNS/reason-$ID-rlsd/rlsd_vs_grpo.png" >&2

"$PYTHON" - "$RUNS/.reason-$ID-grpo.json" "$RUNS/.reason-$ID-rlsd.json" <<'EOF'
import json
import sys

grpo, rlsd = (json.load(open(path)) for path in sys.argv[1:3])
base = rlsd["eval_before"]["accuracy"]
print(f"\n{'':14}{'held-out accuracy':>20}{'minutes':>10}")
print(f"{'base model':14}{base:>20.3f}")
for label, summary in (("GRPO", grpo), ("RLSD", rlsd)):
    print(f"{label:14}{summary['eval_after']['accuracy']:>20.3f}{summary['train_seconds'] / 60:>10.1f}")
failed = [label for label, summary in (("GRPO", grpo), ("RLSD", rlsd)) if not summary["eval_after"]["accuracy"] > base]
if failed:
    print(f"GATE FAILED: {' and '.join(failed)} did not raise held-out accuracy over the base model")
    sys.exit(1)
print("gate passed: GRPO and RLSD both raised held-out accuracy over the base model")
EOF
