#!/usr/bin/env bash
# Continual learning on the embedded SmolLM2-135M, two rounds, as a CI gate would run it:
#   round 1: base model -> sft on examples/company -> recover (distillation from the adapter-off base)
#   round 2: the folder's second revision (facts changed in four documents, a new document, one removed)
#            -> sft --from the round-1 run (learns what is new or changed, replays what still holds) -> recover
# Every stage scores document QA (round one's questions, and round two's new / updated / kept ones with the stale
# answers), an IFEval subset, world-knowledge retention and drift from the base; then one table over the rounds, a
# PNG, and the gate. Exits 1 when round one taught nothing, round two (after its recover) knew fewer than 2 of the
# 6 new facts, stale answers did not fall to 0.2, unchanged round-one knowledge was not kept at 90%, round two's
# recover did not cut the drift from the base by a third, or IFEval ended more than 0.1 below the base. The issue's
# stricter targets are printed beside it, met or not (docs/continual.md).
# Runs are new folders under $RUNS (never overwritten).
#
#   examples/continual_learning.sh            # or: make demo
#   RLSD=rlsd RUNS=runs examples/continual_learning.sh
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
QA1="$HERE/company_qa.jsonl"
QA2="$HERE/company_qa_revision2.jsonl"
# IFEval prompts: the copy shipped inside rlsd (no network).
EVAL=(--eval ifeval --eval-limit "${IFEVAL_LIMIT:-60}" --eval-max-new-tokens 128)

step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }
run() {  # run NAME VERB ARGS...: one rlsd run, its JSON summary kept beside it
  local name="$1"; shift
  "$RLSD" "$@" "${EVAL[@]}" --runs-dir "$RUNS" --name "$name" --json > "$RUNS/.$name.json" || { echo "$name failed" >&2; exit 1; }
  mv "$RUNS/.$name.json" "$RUNS/$name/cli-summary.json"
}

step "building the PDF and DOCX of the example corpus"
"$PYTHON" "$HERE/build_docs.py" >&2

step "round 1: sft on examples/company (scores the base model first)"
run "demo-$ID-r1-sft" sft "$HERE/company" --recipe cpu-demo-sft --eval-qa "$QA1"
step "round 1: recover --teacher base (the same weights with the adapter switched off)"
run "demo-$ID-r1-recover" recover --from "$RUNS/demo-$ID-r1-sft" --recipe cpu-demo-recover

step "round 2: the folder's second revision"
R2="$RUNS/demo-$ID-company-revision2"
cp -r "$HERE/company" "$R2"
rm "$R2/culture_and_events.md"
cp "$HERE/company_revision2/"* "$R2/"
"$RLSD" sft "$R2" --from "$RUNS/demo-$ID-r1-recover" --dry-run --json |
  "$PYTHON" -c "import json, sys; print('changes:', json.load(sys.stdin)['changes'])" >&2
# Round one's questions are scored again (the lineage adds them); round two's are new, with their stale answers.
run "demo-$ID-r2-sft" sft "$R2" --from "$RUNS/demo-$ID-r1-recover" --recipe cpu-demo-sft-round --eval-qa "$QA2"
step "round 2: recover"
run "demo-$ID-r2-recover" recover --from "$RUNS/demo-$ID-r2-sft" --recipe cpu-demo-recover

step "done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
"$RLSD" runs show "$RUNS/demo-$ID-r2-recover" >&2
"$PYTHON" "$HERE/rounds_report.py" "$RUNS" "demo-$ID"
