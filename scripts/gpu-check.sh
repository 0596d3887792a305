#!/usr/bin/env bash
# initbench's GPU check: one prepared command for a lent GPU (docs/benchmarks.md#gpu-check-one-prepared-command).
#
#   bash scripts/gpu-check.sh --prepare   here: copy FashionMNIST's four .gz files into .gpu/data
#                                         (ignored; the device call carries it) and print that call
#   bash scripts/gpu-check.sh             on the GPU machine, in the repository root, $OUT set:
#                                         the CUDA engine tests, a sweep interrupted and resumed,
#                                         timings, share of fp32 peak, a profile; docs/bench-gpu.json,
#                                         $OUT/gpu-summary.md; the summary printed last (about 7 minutes)
#   bash scripts/gpu-check.sh --dry-run   the same steps at a tiny size on the CPU, into $OUT or a
#                                         temporary folder (never docs/): the script known to work
#
# Every step runs under a timeout within an overall budget (GPU_CHECK_BUDGET_S, default 450 s);
# a step that fails or hangs is recorded and the later steps still run. Exit status: 0 when every
# step ran, 1 when one failed, 2 for a usage or data problem, 3 when torch or CUDA is missing.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
GPU_DIR="$ROOT/.gpu"
FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
CALL='run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=540)'
START=$(date +%s)

say() { printf 'gpu-check: %s\n' "$*"; }
die() { printf 'gpu-check: %s\n' "$1" >&2; exit "${2:-2}"; }

prepare() {
  local source="${INITBENCH_SYSTEM_DATA:-/usr/share/datasets/fashion-mnist}" name bytes
  for name in "${FILES[@]}"; do
    [ -f "$source/$name" ] || die "FashionMNIST's $name is not in $source: install Debian's dataset-fashion-mnist (bash scripts/setup.sh) or set INITBENCH_SYSTEM_DATA to a folder holding the four .gz files."
  done
  if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 && ! git -C "$ROOT" check-ignore -q .gpu/data; then
    die ".gpu/ is not ignored by git, so the call would carry it twice: add /.gpu/ to .gitignore."
  fi
  rm -rf "$GPU_DIR"
  mkdir -p "$GPU_DIR/data" || die "cannot make $GPU_DIR/data."
  for name in "${FILES[@]}"; do
    cp "$source/$name" "$GPU_DIR/data/$name" || die "cannot copy $source/$name into $GPU_DIR/data."
  done
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 scripts/gpu_check.py verify-data "$GPU_DIR/data" || exit 2
  bytes=$(du -sb "$GPU_DIR" | cut -f1)
  [ "$bytes" -lt $((60 * 1024 * 1024)) ] || die "$GPU_DIR holds $bytes bytes: over the 64 MiB a call carries."
  say "$GPU_DIR holds FashionMNIST's four .gz files, verified ($((bytes / 1024 / 1024)) MiB, $bytes bytes)."
  say "the device call (one, about 7 minutes; the tree travels with it, so save your edits first):"
  printf '%s\n' "$CALL"
}

mode=device
case "${1:-}" in
  --prepare) [ $# -eq 1 ] || die "--prepare takes nothing more."; prepare; exit 0 ;;
  --dry-run) mode=dry; shift ;;
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown option $1: give --prepare, --dry-run, or nothing (the device run)." ;;
esac
[ $# -eq 0 ] || die "unexpected arguments: $*"
command -v python3 >/dev/null || die "python3 is not on PATH." 3

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # initbench from this tree, installed or not
export PYTHONUNBUFFERED=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")" || die "cannot make a temporary folder."
trap 'rm -rf "$WORK"' EXIT

if [ "$mode" = dry ]; then
  device=cpu
  budget=${GPU_CHECK_BUDGET_S:-300}
  # One thread per process: the tiny sizes gain nothing from more, and on a busy machine
  # OpenMP's threads wait on each other (a step 50 times slower); the timings mean nothing here.
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  [ -n "${OUT:-}" ] || OUT="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-dry.XXXXXX")" || die "cannot make a temporary folder."
  mkdir -p "$OUT" || die "cannot make OUT=$OUT."
  say "dry run on the CPU into $OUT"
  echo "skipped (dry run)" > "$WORK/install.txt"
else
  device=cuda
  budget=${GPU_CHECK_BUDGET_S:-450}
  [ -n "${OUT:-}" ] || OUT="$ROOT/results/gpu-check"
  mkdir -p "$OUT" || die "cannot make OUT=$OUT."
  for name in "${FILES[@]}"; do
    [ -f "$GPU_DIR/data/$name" ] || die "FashionMNIST is not in .gpu/data ($name missing): run bash scripts/gpu-check.sh --prepare before the call, and carry .gpu: $CALL"
  done
  # the .gz files as the system copy; decompressed (and verified) once into a folder of the device's
  export INITBENCH_SYSTEM_DATA="$GPU_DIR/data"
  export INITBENCH_DATA_DIR="${TMPDIR:-/tmp}/gpu-check-data"
fi

# torch, the device (CUDA unless dry run) and the data, or one line saying what is missing
timeout 120 python3 scripts/gpu_check.py env --device "$device" --write "$WORK/env.json" 2> "$WORK/env.err"
status=$?
if [ $status -ne 0 ]; then
  line="$(grep '^gpu-check:' "$WORK/env.err" | tail -n 1)"
  [ $status -eq 124 ] && line="gpu-check: checking torch and CUDA took over 120 s: the GPU does not answer."
  [ -n "$line" ] || line="gpu-check: checking torch and CUDA failed: $(grep -v '^\s*$' "$WORK/env.err" | tail -n 1)"
  printf '# initbench GPU check: nothing measured\n\n%s\n' "${line#gpu-check: }" > "$OUT/gpu-summary.md"
  printf '%s\n' "$line" >&2
  exit 3
fi

if [ "$mode" = device ]; then
  # initbench into this Python without dependencies or network; PYTHONPATH already serves it
  # if pip refuses (an externally managed Python, say), so a failure here is only recorded
  if timeout 90 python3 -m pip install --no-deps --no-build-isolation --no-index -q -e . > "$WORK/pip.log" 2>&1; then
    echo "ok (pip install -e, no dependencies)" > "$WORK/install.txt"
  else
    echo "pip failed, initbench run from the tree (PYTHONPATH): $(grep -v '^\s*$' "$WORK/pip.log" | tail -n 1 | cut -c1-200)" > "$WORK/install.txt"
  fi
  say "install: $(cat "$WORK/install.txt")"
fi

python3 scripts/gpu_check.py run --work "$WORK" --out "$OUT" --device "$device" \
  --deadline $((START + budget)) $([ "$mode" = dry ] && echo --dry-run)
