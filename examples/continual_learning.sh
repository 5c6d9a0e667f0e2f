#!/usr/bin/env bash
# The continual-learning story on the embedded SmolLM2-135M, as a CI gate would run it:
#   base model -> sft on the company documents -> recover (on-policy distillation from the adapter-off base)
# scoring document QA (held-out questions) and an IFEval subset at every stage, then a comparison table and PNG.
# Exits 1 when document QA did not rise after sft, or when the IFEval score after recover is not closer to the
# base model's than after sft. Runs are new folders under $RUNS (never overwritten).
#
#   examples/continual_learning.sh            # or: make demo
#   RLSD=rlsd RUNS=runs examples/continual_learning.sh
#   SFT_RECIPE=cpu-sft examples/continual_learning.sh   # the slower, gentler sft (RECOVER_RECIPE= picks recover's)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
SFT="demo-$ID-sft"
RECOVER="demo-$ID-recover"
QA="$HERE/company_qa.jsonl"
# IFEval prompts: the copy shipped inside rlsd (no network).
EVAL=(--eval ifeval --eval-limit "${IFEVAL_LIMIT:-60}" --eval-max-new-tokens 128)

step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

step "building the PDF and DOCX of the example corpus"
"$PYTHON" "$HERE/build_docs.py" >&2

step "sft on examples/company (scores the base model first, then the trained run)"
"$RLSD" sft "$HERE/company" --recipe "${SFT_RECIPE:-cpu-demo-sft}" --eval-qa "$QA" "${EVAL[@]}" \
  --runs-dir "$RUNS" --name "$SFT" --json > "$RUNS/.$SFT.json" || { echo "sft failed" >&2; exit 1; }
mv "$RUNS/.$SFT.json" "$RUNS/$SFT/cli-summary.json"

step "recover --teacher base (the same weights with the adapter switched off)"
"$RLSD" recover --from "$RUNS/$SFT" --recipe "${RECOVER_RECIPE:-cpu-demo-recover}" "${EVAL[@]}" \
  --runs-dir "$RUNS" --name "$RECOVER" --json > "$RUNS/.$RECOVER.json" || { echo "recover failed" >&2; exit 1; }
mv "$RUNS/.$RECOVER.json" "$RUNS/$RECOVER/cli-summary.json"

step "comparison"
"$RLSD" eval compare smollm2-135m "$RUNS/$SFT" "$RUNS/$RECOVER" --plot "$RUNS/$RECOVER/compare.png" >&2

step "done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
# The gate: the recover run's summary holds base (adapter off), before (= the sft run) and after scores.
"$PYTHON" - "$RUNS/$RECOVER/cli-summary.json" <<'EOF'
import json
import sys

summary = json.load(open(sys.argv[1]))
metric = "inst_level_loose_acc"
rows = [("base model", summary["eval_base"]), ("after sft", summary["eval_before"]), ("after recover", summary["eval_after"])]
print(f"\n{'':16}{'document QA':>14}{'IFEval (inst. loose)':>24}")
for label, scores in rows:
    print(f"{label:16}{scores['qa']['accuracy']:>14.3f}{scores['ifeval'][metric]:>24.3f}")
(qa_base, if_base), (qa_sft, if_sft), (qa_rec, if_rec) = ((s["qa"]["accuracy"], s["ifeval"][metric]) for _, s in rows)
failures = []
if not qa_sft > qa_base:
    failures.append(f"document QA did not rise after sft ({qa_base:.3f} -> {qa_sft:.3f})")
if not abs(if_rec - if_base) < abs(if_sft - if_base):
    failures.append(f"IFEval after recover ({if_rec:.3f}) is not closer to the base ({if_base:.3f}) than after sft ({if_sft:.3f})")
print(f"\nruns: {summary['parent']} -> {summary['run']}")
if failures:
    print("GATE FAILED: " + "; ".join(failures))
    sys.exit(1)
print("gate passed: sft taught the documents and recover brought instruction following back toward the base")
EOF
