#!/usr/bin/env bash
# GPU check: the whole notebook pipeline (`sttune run`, papermill) on a CUDA GPU with bf16 and real
# batch sizes, gradient checkpointing off and on, printing samples/s and peak GPU memory of each
# training (from the run's training.json: train_samples_per_second, peak_gpu_memory_bytes =
# torch.cuda.max_memory_allocated during training).
#
#   pair_score  embedded STS-B, CoSENTLoss, batch 128
#   retrieval   BEIR SciFact, CachedMultipleNegativesRankingLoss, batch 1024 (SciFact's ~800
#               training pairs make each epoch one batch of all of them: the batch is capped by the data)
#   with 2+ GPUs also pair_score in one process per GPU (train.nproc, torchrun + nccl)
#
# usage: bench/gpu_check.sh [SUMMARY_FILE]
#   SUMMARY_FILE or $GPU_CHECK_SUMMARY   where the summary table goes (default bench/out/gpu_check.txt)
#   SCIFACT=DIR          the BEIR SciFact folder (default ../shared/data/scifact, from the repo root)
#   RUNS_DIR=DIR         where the runs go (default bench/out/gpu-runs)
#   CASES="a b"          run only these cases (names as in the summary; default all)
#   STSB_EPOCHS=N        epochs on STS-B (default 1: 45 steps of 128)
#   SCIFACT_EPOCHS=N     epochs on SciFact (default 10: one step each)
#   PYTHON=PATH          the interpreter with sttune installed (default .venv/bin/python)
#   GPU_CHECK_DRY_RUN=1  check every command with the CLI's parser and the config, run nothing
# Evaluation and the maps run on small settings (fewer bootstrap samples, 200 points, UMAP interpreted
# with NUMBA_DISABLE_JIT=1 instead of minutes of numba compilation): they are not what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
SUMMARY=${1:-${GPU_CHECK_SUMMARY:-bench/out/gpu_check.txt}}
SCIFACT=${SCIFACT:-../shared/data/scifact}
RUNS_DIR=${RUNS_DIR:-bench/out/gpu-runs}
STSB_EPOCHS=${STSB_EPOCHS:-1}
SCIFACT_EPOCHS=${SCIFACT_EPOCHS:-10}
DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
export NUMBA_DISABLE_JIT=${NUMBA_DISABLE_JIT:-1} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

COMMON=(model.device=cuda train.precision=bf16 train.early_stopping_patience=null
        eval.bootstrap_samples=200 eval.reference_max_pairs=300 "eval.interpolation_alphas=[0.0, 1.0]"
        viz.max_points=200 viz.n_epochs=100)
STSB=(data.source=embedded:stsb train.batch_size=128 "train.epochs=$STSB_EPOCHS")
RETRIEVAL=("data.source=$SCIFACT" data.shape=retrieval loss.name=CachedMultipleNegativesRankingLoss
           loss.params.mini_batch_size=128 train.batch_size=1024 "train.epochs=$SCIFACT_EPOCHS")

# name -> overrides (each word one -p; STSB and RETRIEVAL stand for their lists), in the order they run.
CASE_NAMES=(stsb-bs128-gc-off stsb-bs128-gc-on scifact-cmnrl-bs1024-gc-off scifact-cmnrl-bs1024-gc-on
            stsb-bs128-nproc2)
declare -A CASE_ARGS=(
  [stsb-bs128-gc-off]="STSB train.gradient_checkpointing=false"
  [stsb-bs128-gc-on]="STSB train.gradient_checkpointing=true"
  [scifact-cmnrl-bs1024-gc-off]="RETRIEVAL train.gradient_checkpointing=false"
  [scifact-cmnrl-bs1024-gc-on]="RETRIEVAL train.gradient_checkpointing=true"
  [stsb-bs128-nproc2]="STSB train.gradient_checkpointing=false train.nproc=2"  # only with 2+ GPUs
)
args=()

overrides_of() {  # the -p arguments of a case
  local word
  local -n out=$2
  out=()
  for word in ${CASE_ARGS[$1]}; do
    case $word in
      STSB) for o in "${STSB[@]}"; do out+=(-p "$o"); done ;;
      RETRIEVAL) for o in "${RETRIEVAL[@]}"; do out+=(-p "$o"); done ;;
      *) out+=(-p "$word") ;;
    esac
  done
  for o in "${COMMON[@]}"; do out+=(-p "$o"); done
}

summarise() {  # one line of the summary table for a finished (or failed) run
  "$PYTHON" - "$RUNS_DIR/$1" "$1" "$2" <<'EOF'
import json, sys
from pathlib import Path
run, name, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def load(path):
    return json.loads(path.read_text()) if path.is_file() else {}
t, manifest, m = load(run / "training.json"), load(run / "manifest.json"), load(run / "eval" / "metrics.json")
failed = [s for s, e in manifest.get("stages", {}).items() if e.get("status") != "completed"]
def test_metric(metrics):  # the task's headline test metric, base -> fine-tuned
    key, models = metrics.get("primary_metric"), metrics.get("models", {})
    try:
        return f"{key} {models['base']['metrics'][key]['value']:.4f} -> {models['fine_tuned']['metrics'][key]['value']:.4f}"
    except (KeyError, TypeError):
        return "-"
peak = t.get("peak_gpu_memory_gib")
rate = t.get("train_samples_per_second")
status = "FAILED: no run" if not manifest else ("FAILED at " + failed[0] if failed else "ok")
print(f"{name:<28} {status:<22} {t.get('loss', '-'):<36} "
      f"{t.get('global_batch_size', '-'):>6} {t.get('global_step', '-'):>5} "
      f"{(f'{rate:.1f}' if rate else '-'):>10} {(f'{peak:.2f}' if peak is not None else '-'):>9} "
      f"{t.get('train_seconds', '-'):>8} {seconds:>7.0f}  {test_metric(m)}")
EOF
}

if [[ $DRY_RUN == 1 ]]; then
  # Every case's command, one per line, checked in one python process (the import of the losses is the slow part).
  for name in "${CASE_NAMES[@]}"; do
    overrides_of "$name" args
    printf '%q ' run --preset default --name "$name" --runs-dir "$RUNS_DIR" --overwrite "${args[@]}"
    echo
  done | "$PYTHON" -c '
import shlex, sys
from sttune_helpers.cli import build_parser
from sttune_helpers.config import resolve_config
from sttune_helpers.losses import choose_loss
for line in sys.stdin:
    argv = shlex.split(line)
    args = build_parser().parse_args(argv)
    config = resolve_config(args.preset, args.config, args.overrides)
    assert config.model.device == "cuda" and config.train.precision == "bf16"
    choose_loss(config, config.data.shape if config.data.shape != "auto" else "pair_score")  # the loss fits the shape
    print("accepted: sttune " + shlex.join(argv))
'
  exit 0
fi

"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: torch sees no CUDA GPU")'
mkdir -p "$RUNS_DIR" "$(dirname "$SUMMARY")"
# The header first and each case's line as soon as it finishes, so that a run stopped part-way (a
# lease's time limit, Ctrl-C) still leaves the figures of the cases that finished.
{
  echo "# bench/gpu_check.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/# gpu: /'
  "$PYTHON" -c 'import torch, transformers, sentence_transformers as st; print(f"# torch {torch.__version__} (cuda {torch.version.cuda}), transformers {transformers.__version__}, sentence-transformers {st.__version__}")'
  printf '%-28s %-22s %-36s %6s %5s %10s %9s %8s %7s  %s\n' case status loss batch steps samples/s peak_GiB train_s wall_s \
    'test metric: base -> fine-tuned'
} | tee "$SUMMARY"
selected=${CASES:-${CASE_NAMES[*]}}
status=0
for name in "${CASE_NAMES[@]}"; do
  [[ " $selected " == *" $name "* ]] || continue
  if [[ $name == *-nproc2 ]] && (( $(nvidia-smi -L 2>/dev/null | wc -l) < 2 )); then
    echo "gpu_check: $name skipped: it needs 2 GPUs" >&2
    continue
  fi
  if [[ $name == scifact-* && ! -f $SCIFACT/corpus.jsonl ]]; then
    echo "gpu_check: $name skipped: no BEIR folder at $SCIFACT (set SCIFACT=DIR)" >&2
    status=1
    continue
  fi
  overrides_of "$name" args
  echo "=== $name: sttune run --preset default --name $name ${args[*]}"
  started=$SECONDS
  if ! "$PYTHON" -m sttune_helpers.cli run --preset default --name "$name" --runs-dir "$RUNS_DIR" --overwrite \
      "${args[@]}" 2>&1 | tee "$RUNS_DIR/$name.log"; then
    status=1
  fi
  summarise "$name" $((SECONDS - started)) | tee -a "$SUMMARY"
done
exit $status
