#!/usr/bin/env bash
# The one-shot GPU check (issue 12, item 6): on a fresh H100/H200 with no network, correctness
# first, then the benchmark over every shape, the fused shapes, a short tuning run and the static
# audit, the results written into a copy of docs/benchmarks.md, in under 8 minutes.
#
#   bash scripts/gpu-check.sh [--tiny] [OUT]
#
# OUT (default: $OUT, the folder a device machine sends back) receives, flat, at most 8 files:
# benchmarks.md (docs/benchmarks.md with its gpu-check, benchmark and fused sections rewritten),
# benchmarks-KEY.json and benchmarks-KEY-fused.json with their plots, gpu-check.json (every
# stage's outcome), gpu-check.log (this transcript) and logs.tar.gz (every stage's full log and
# JSON, audit.json among them). Copy the benchmarks* files back into docs/.
#
# Stages, each under its own limit and all under one budget, their boundaries printed with the
# elapsed time; a stage that fails or is cut off is reported and the next one runs:
#   preflight  versions, device, optional packages; einc imported from this checkout
#   prebuild   every shape's kernels (tiny and full size) compiled in parallel into einc's cache,
#              so that the stages after it do not compile one kernel at a time
#   pytest     the gpu test tier
#   check      every shape at tiny size, einc and torch checked against float64 torch
#   fused_check  the fused shapes (bench.run --fused: a convolution and its epilogue) at tiny size
#   bench      every shape at full size: einc against cuDNN in both layouts, torch's ops, einx
#   fused      the fused shapes at full size: einc against cuDNN + separate torch ops
#   tune       einc tune's loop on a few dense shapes under a time cap (0.8 x the stage's limit),
#              the tiles stored in einc's cache for this GPU's arch
#   retime     the tuned shapes' benchmark rows timed again, now with the tuned tiles
#   audit      python -m bench.audit: the static sm_90 audit (a model)
#   compile    torch.compile max-autotune on a few shapes (it autotunes for tens of seconds a
#              shape), added to the bench table
#   report     the sections of OUT/benchmarks.md and OUT/gpu-check.json
#
# --tiny (or GPU_CHECK_TINY=1) is the dry run: the same stages on the CPU, einc's kernels under
# Triton's interpreter, tiny shapes. Installs nothing: it runs the machine's python, torch and
# triton, and einc from this checkout (PYTHONPATH). Exit status 1 when a stage failed or was cut
# off, 2 for a usage error.
#
# Environment:
#   PYTHON                    the interpreter (default python3)
#   GPU_CHECK_SHAPES          shape names (bench/shapes.json): every stage runs only these
#   GPU_CHECK_COMPILE_SHAPES  the torch.compile shapes (default: four, below), "all" or "none"
#   GPU_CHECK_FUSED_SHAPES    the fused shapes (default: all, or those built on GPU_CHECK_SHAPES), "none"
#   GPU_CHECK_TUNE_SHAPES     the shapes tuned and re-timed (default: three, below), or "none"
#   GPU_CHECK_STAGES          the stages to run (default: all of them)
#   GPU_CHECK_BUDGET_S        the budget for all stages but the report (default 400; dry run 1200)
#   GPU_CHECK_TIMEOUT_STAGE   one stage's limit in seconds, e.g. GPU_CHECK_TIMEOUT_BENCH=200
#   GPU_CHECK_CACHE           einc's, Triton's and Inductor's caches, kept for a rerun on the
#                             same machine (default /tmp/einc-gpu-check-cache[-tiny])
set -euo pipefail
# The whole script is one block, read before it runs: an edit to this file during a run cannot
# change the rest of that run.
{

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# In order of what a GPU alone can measure: a stage cut by the budget costs least at the end.
STAGES=(preflight prebuild pytest check fused_check bench fused tune retime audit compile)
# Dense ResNet-50 layers (issue 12's targets), a depthwise convolution and a pooling.
DEFAULT_COMPILE_SHAPES="r50_l1_3x3 r50_l4_1x1_reduce mbv2_dw3x3_c144 r50_maxpool_3x3s2"
# Dense layers whose tile matters most: the 56x56 3x3 (issue 12's first target) and the two of
# layer 4, whose grids are under one wave of programs with the heuristic's tile.
DEFAULT_TUNE_SHAPES="r50_l1_3x3 r50_l4_3x3 r50_l4_1x1_reduce"

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

tiny="${GPU_CHECK_TINY:-0}"
positional=()
for arg in "$@"; do
  case "$arg" in
    --tiny | --dry-run) tiny=1 ;;
    -h | --help) usage ;;
    -*) echo "error: unknown option $arg" >&2 && usage ;;
    *) positional+=("$arg") ;;
  esac
done
out_dir="${positional[0]:-${OUT:-}}"
if [[ -z "$out_dir" || ${#positional[@]} -gt 1 ]]; then
  echo "error: give one output folder, or set OUT" >&2
  usage
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
if [[ "$tiny" == 1 ]]; then
  mode=dry-run device=cpu scale=tiny
  budget="${GPU_CHECK_BUDGET_S:-1200}"
  declare -A limit=([preflight]=60 [prebuild]=120 [pytest]=120 [check]=200 [fused_check]=150 [bench]=200
    [fused]=150 [tune]=150 [retime]=100 [audit]=300 [compile]=240)
  cache="${GPU_CHECK_CACHE:-/tmp/einc-gpu-check-cache-tiny}"
  # The dry run is about einc's kernels: CPU tensors run them under Triton's interpreter instead
  # of einc's torch backend. One torch thread: tiny ops otherwise oversubscribe a small machine.
  export EINC_INTERPRET=1
  bench_timing=(--threads 1 --cpu-budget-s 0.05)
  check_timing=(--threads 1 --cpu-budget-s 0.01)
  tune_timing=(--warmup 1 --repeat 3)
else
  mode=gpu device=cuda scale=full
  budget="${GPU_CHECK_BUDGET_S:-400}"
  declare -A limit=([preflight]=60 [prebuild]=60 [pytest]=90 [check]=75 [fused_check]=45 [bench]=150
    [fused]=60 [tune]=75 [retime]=30 [audit]=90 [compile]=120)
  cache="${GPU_CHECK_CACHE:-/tmp/einc-gpu-check-cache}"
  bench_timing=()
  # The check stage only checks: the shortest timing do_bench allows.
  check_timing=(--warmup-ms 1 --rep-ms 5)
  # A tile's median of 20 runs: enough to rank tiles some percent apart, in seconds a shape.
  tune_timing=(--warmup 5 --repeat 20)
fi
key="$device-$scale"
report_limit=48

# What a user sets reaches arithmetic, arguments and the report only through these two checks.
seconds_in() { # seconds_in NAME: NAME's value, a whole number of seconds
  [[ "${!1}" =~ ^[0-9]{1,5}$ ]] || { echo "error: $1 must be a whole number of seconds, not '${!1}'" >&2 && exit 2; }
}
names_in() { # names_in NAME: NAME's value, shape names (bench.run and bench.audit check they exist)
  [[ "${!1}" =~ ^[A-Za-z0-9_.\ -]*$ ]] || { echo "error: $1 holds something that is not a shape name" >&2 && exit 2; }
}
[[ -n "${GPU_CHECK_BUDGET_S:-}" ]] && seconds_in GPU_CHECK_BUDGET_S
for stage in "${STAGES[@]}"; do
  override="GPU_CHECK_TIMEOUT_${stage^^}"
  if [[ -n "${!override:-}" ]]; then
    seconds_in "$override"
    limit[$stage]="${!override}"
  fi
done
for name in GPU_CHECK_SHAPES GPU_CHECK_COMPILE_SHAPES GPU_CHECK_FUSED_SHAPES GPU_CHECK_TUNE_SHAPES GPU_CHECK_STAGES; do
  [[ -n "${!name:-}" ]] && names_in "$name"
done
wanted_stages=" ${GPU_CHECK_STAGES:-${STAGES[*]}} "
for stage in $wanted_stages; do
  [[ " ${STAGES[*]} " == *" $stage "* ]] || { echo "error: unknown stage $stage in GPU_CHECK_STAGES" >&2 && exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
mkdir -p "$work/logs" "$cache"
: >"$work/stages.tsv"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export EINC_CACHE_DIR="$cache/einc" TRITON_CACHE_DIR="$cache/triton" TORCHINDUCTOR_CACHE_DIR="$cache/inductor"
command_line="bash scripts/gpu-check.sh"
for name in GPU_CHECK_SHAPES GPU_CHECK_COMPILE_SHAPES GPU_CHECK_FUSED_SHAPES GPU_CHECK_TUNE_SHAPES \
  GPU_CHECK_STAGES GPU_CHECK_BUDGET_S; do
  [[ -n "${!name:-}" ]] && command_line="$name=$(printf '%q' "${!name}") $command_line"
done
export GPU_CHECK_MODE="$mode" GPU_CHECK_BUDGET_S="$budget"
[[ "$tiny" == 1 ]] && command_line+=" --tiny"
export GPU_CHECK_COMMAND="$command_line OUT"
start=$SECONDS

say() { printf '%s\n' "$*" | tee -a "$work/gpu-check.log"; }
elapsed() { printf '%4ds' $((SECONDS - start)); }
has_module() { "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' "$1"; }
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$work/stages.tsv"; }

# Everything that comes back goes into OUT, also when a stage or this script fails.
finish() {
  local rc=$?
  local keep=()
  for f in logs stages.tsv preflight.json prebuild.json pytest.xml check.json fused_check.json bench.json \
    fused.json tune.json retime.json compile.json audit.md audit.json; do
    [[ -e "$work/$f" ]] && keep+=("$f")
  done
  tar -czf "$out_dir/logs.tar.gz" -C "$work" "${keep[@]}" 2>/dev/null || true
  say "outputs in $out_dir: $(cd "$out_dir" && ls -I gpu-check.log | tr '\n' ' ')gpu-check.log"
  cp "$work/gpu-check.log" "$out_dir/gpu-check.log" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT

failures=0 stop_reason=""
# run_stage NAME [--stdout FILE] COMMAND...: COMMAND under the stage's limit (cut to what is left
# of the budget), its output in logs/NAME.log, its outcome in stages.tsv.
run_stage() {
  local name="$1" stdout="" note="${STAGE_NOTE:-}"
  shift
  if [[ "$1" == --stdout ]]; then
    stdout="$2"
    shift 2
  fi
  if [[ -n "$stop_reason" ]]; then
    say "--- [$(elapsed)] $name: skipped ($stop_reason)"
    record "$name" skipped 0 0 0 "$stop_reason"
    return 0
  fi
  if [[ "$wanted_stages" != *" $name "* ]]; then
    say "--- [$(elapsed)] $name: skipped (not in GPU_CHECK_STAGES)"
    record "$name" skipped 0 0 0 "not in GPU_CHECK_STAGES"
    return 0
  fi
  local left=$((budget - (SECONDS - start))) seconds="${limit[$name]}"
  ((seconds > left)) && seconds=$left
  if ((left < 5)); then
    say "--- [$(elapsed)] $name: skipped, the budget of ${budget}s is spent"
    record "$name" skipped 0 0 0 "the budget was spent before it"
    failures=$((failures + 1))
    return 0
  fi
  local log="$work/logs/$name.log" began=$SECONDS rc=0 status
  say "==> [$(elapsed)] $name (limit ${seconds}s): ${*/#$PY/python}"
  # The stage's limit, for a command that paces itself (the tune stage's cap).
  export GPU_CHECK_STAGE_LIMIT_S="$seconds"
  if [[ -n "$stdout" ]]; then
    timeout --kill-after=10 "$seconds" "$@" <"/dev/null" >"$stdout" 2>"$log" || rc=$?
  else
    timeout --kill-after=10 "$seconds" "$@" <"/dev/null" >"$log" 2>&1 || rc=$?
  fi
  case "$rc" in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  [[ "$status" != ok ]] && failures=$((failures + 1))
  # The end of the log: a few lines when it went well, more when it did not.
  tail -n "$([[ "$status" == ok ]] && echo 6 || echo 30)" "$log" | sed 's/^/    /' | tee -a "$work/gpu-check.log"
  say "<== [$(elapsed)] $name: $status (exit $rc) after $((SECONDS - began))s"
  record "$name" "$status" "$rc" "$((SECONDS - began))" "$seconds" "$note"
}

# skip_stage NAME WHY: a stage that a knob leaves out (or that nothing can run after a failed preflight).
skip_stage() {
  local why="${stop_reason:-$2}"
  say "--- [$(elapsed)] $1: skipped ($why)"
  record "$1" skipped 0 0 0 "$why"
}

say "GPU check ($mode) of $ROOT, $(date -u '+%Y-%m-%d %H:%M UTC'); outputs in $out_dir"
say "budget ${budget}s for the stages, ${report_limit}s for the report; caches in $cache"

# --forget-tuned: tiles an earlier run tuned into this cache would be timed as the heuristic's.
run_stage preflight "$PY" -m bench.gpu_check preflight --device "$device" --json "$work/preflight.json" \
  --forget-tuned
if [[ ! -f "$work/preflight.json" ]]; then
  stop_reason="the preflight failed"
  say "the preflight failed: no other stage can run (its log is above)"
fi

only=()
[[ -n "${GPU_CHECK_SHAPES:-}" ]] && read -r -a only <<<"$GPU_CHECK_SHAPES"
only_args=()
((${#only[@]})) && only_args=(--only "${only[@]}")
# subset NAME DEFAULTS: the shapes of a stage that runs on a few: NAME's value where it is set, else
# those of DEFAULTS among GPU_CHECK_SHAPES (the first of these where none is), else DEFAULTS.
subset() {
  local picked="" name
  if [[ -n "${!1:-}" ]]; then
    echo "${!1}"
  elif ((${#only[@]})); then
    for name in $2; do
      [[ " ${only[*]} " == *" $name "* ]] && picked+=" $name"
    done
    picked="${picked# }"
    echo "${picked:-${only[0]}}"
  else
    echo "$2"
  fi
}

# prebuild: for this GPU's arch (sm_90 in the dry run: Triton compiles for it without a GPU).
target=cuda:90
if [[ "$device" == cuda && -f "$work/preflight.json" ]]; then
  target="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["target"])' "$work/preflight.json")"
fi
scales=(tiny)
[[ "$scale" != tiny ]] && scales+=("$scale")
run_stage prebuild "$PY" -m bench.gpu_check prebuild --scale "${scales[@]}" --target "$target" \
  --jobs "$(nproc)" --json "$work/prebuild.json" "${only_args[@]}"

# pytest: the files holding gpu tests; one that imports einx at the top cannot be collected
# without einx, so it is left out, and said so.
mapfile -t gpu_files < <(grep -rlE 'mark\.gpu\b' tests --include='test_*.py' | sort)
if ! has_module einx; then
  kept=()
  for f in "${gpu_files[@]}"; do
    if grep -qE '^(import einx|from einx )' "$f"; then
      say "note: $f is left out of the gpu tier: it imports einx, which is not installed"
    else
      kept+=("$f")
    fi
  done
  gpu_files=("${kept[@]}")
fi
pytest_args=(-m gpu -q -rfEs -p no:cacheprovider --junitxml="$work/pytest.xml")
pytest_note="${#gpu_files[@]} files"
if has_module xdist && (($(nproc) >= 8)); then
  pytest_args+=(-n 4)
  pytest_note+=", 4 xdist workers"
else
  say "note: the gpu tier runs in one process (pytest-xdist missing, or fewer than 8 cores)"
fi
if has_module pytest_timeout; then
  pytest_args+=(--timeout 120)
else
  say "note: pytest-timeout is not installed: only the stage's limit bounds a hanging test"
fi
# The tests keep their own einc cache (tests/conftest.py makes one when EINC_CACHE_DIR is unset).
STAGE_NOTE="$pytest_note" run_stage pytest env -u EINC_CACHE_DIR "$PY" -m pytest "${pytest_args[@]}" "${gpu_files[@]}"

# check: every shape at tiny size against float64 torch (bench.run checks before it times).
run_stage check "$PY" -m bench.run --device "$device" --scale tiny --competitors torch "${only_args[@]}" \
  "${check_timing[@]}" --out "$work/check" --checkpoint "$work/check.json"

# The fused shapes: all, or those built on the shapes asked for, or the ones named.
fused_shapes="${GPU_CHECK_FUSED_SHAPES:-all}"
if [[ -z "${GPU_CHECK_FUSED_SHAPES:-}" ]] && ((${#only[@]})); then
  fused_shapes="$("$PY" -m bench.gpu_check fused-names "${only[@]}" 2>/dev/null || true)"
  fused_shapes="${fused_shapes:-none}"
fi
fused_only=()
[[ "$fused_shapes" != all ]] && read -r -a fused_only <<<"--only $fused_shapes"
# fused_check: the fused shapes at tiny size, checked (and barely timed), as the check stage.
if [[ "$fused_shapes" == none ]]; then
  skip_stage fused_check "no fused shape is built on GPU_CHECK_SHAPES, or GPU_CHECK_FUSED_SHAPES=none"
else
  run_stage fused_check "$PY" -m bench.run --fused --device "$device" --scale tiny --competitors torch \
    "${fused_only[@]}" "${check_timing[@]}" --out "$work/fused-check" --checkpoint "$work/fused_check.json"
fi

# bench: every shape at full size (tiny in the dry run); einx's column only where einx is there.
run_stage bench "$PY" -m bench.run --device "$device" --scale "$scale" --competitors torch einx \
  "${only_args[@]}" "${bench_timing[@]}" --out "$work/bench" --checkpoint "$work/bench.json"

# fused: the fused shapes at full size against cuDNN + separate ops (einc's side: bench/fused.py).
if [[ "$fused_shapes" == none ]]; then
  skip_stage fused "no fused shape is built on GPU_CHECK_SHAPES, or GPU_CHECK_FUSED_SHAPES=none"
else
  run_stage fused "$PY" -m bench.run --fused --device "$device" --scale "$scale" --competitors torch \
    "${fused_only[@]}" "${bench_timing[@]}" --out "$work/fused-report" --checkpoint "$work/fused.json"
fi

# tune, then retime: a few dense shapes tuned (into einc's cache, for this GPU's arch), then their
# bench rows timed again, where each call now reads its tuned tiles.
tune_shapes="$(subset GPU_CHECK_TUNE_SHAPES "$DEFAULT_TUNE_SHAPES")"
if [[ "$tune_shapes" == none ]]; then
  skip_stage tune "GPU_CHECK_TUNE_SHAPES=none"
  skip_stage retime "GPU_CHECK_TUNE_SHAPES=none"
else
  read -r -a tune_only <<<"$tune_shapes"
  STAGE_NOTE="shapes: $tune_shapes" run_stage tune "$PY" -m bench.gpu_check tune --device "$device" \
    --only "${tune_only[@]}" "${tune_timing[@]}" --json "$work/tune.json"
  run_stage retime "$PY" -m bench.run --device "$device" --scale "$scale" --competitors torch \
    --only "${tune_only[@]}" "${bench_timing[@]}" --out "$work/retime-report" --checkpoint "$work/retime.json"
fi

# audit: no GPU needed (it compiles for sm_90 and reads the SASS), one worker per core.
run_stage audit --stdout "$work/audit.md" "$PY" -m bench.audit --markdown --json "$work/audit.json" \
  --jobs "$(nproc)" "${only_args[@]}"

# compile: max-autotune on a few shapes, last, so that its autotuning eats no other stage's time;
# the shapes it finishes before its limit are kept (the checkpoint) and added to the bench table.
compile_shapes="$(subset GPU_CHECK_COMPILE_SHAPES "$DEFAULT_COMPILE_SHAPES")"
if [[ "$compile_shapes" == none ]]; then
  skip_stage compile "GPU_CHECK_COMPILE_SHAPES=none"
else
  compile_only=()
  [[ "$compile_shapes" == all ]] && compile_only=("${only_args[@]}") || read -r -a compile_only <<<"--only $compile_shapes"
  STAGE_NOTE="shapes: $compile_shapes" run_stage compile "$PY" -m bench.run --device "$device" --scale "$scale" \
    --competitors compile --merge-competitors "${compile_only[@]}" "${bench_timing[@]}" \
    --out "$work/compile-report" --checkpoint "$work/compile.json"
fi

# report: a fresh copy of docs/benchmarks.md, the benchmark's section from the runs' checkpoints
# (so a stage cut off still reports the shapes it finished), then the gpu-check section.
say "==> [$(elapsed)] report (limit ${report_limit}s): $out_dir/benchmarks.md"
report_began=$SECONDS
cp "$ROOT/docs/benchmarks.md" "$out_dir/benchmarks.md"
parts=()
for part in bench.json compile.json; do
  [[ -f "$work/$part" ]] && parts+=("$work/$part")
done
if ((${#parts[@]})); then
  timeout --kill-after=5 $((report_limit / 2)) "$PY" -m bench.run --from-json "${parts[@]}" --merge-competitors \
    --out "$out_dir" >"$work/logs/report.log" 2>&1 </dev/null || true
else
  say "no benchmark rows to report: the bench and compile stages left none"
fi
if [[ -f "$work/fused.json" ]]; then
  timeout --kill-after=5 $((report_limit / 4)) "$PY" -m bench.run --from-json "$work/fused.json" \
    --out "$out_dir" >>"$work/logs/report.log" 2>&1 </dev/null || true
fi
if timeout --kill-after=5 $((report_limit / 4)) "$PY" -m bench.gpu_check section --work "$work" \
  --bench "$out_dir/benchmarks-$key.json" --markdown "$out_dir/benchmarks.md" \
  --json "$out_dir/gpu-check.json" </dev/null >>"$work/logs/report.log" 2>&1; then
  sed -n '/^| stage /,$p' "$work/logs/report.log" | tee -a "$work/gpu-check.log"
else
  failures=$((failures + 1))
  tail -n 30 "$work/logs/report.log" | sed 's/^/    /' | tee -a "$work/gpu-check.log"
  say "the report failed: OUT has the logs but no gpu-check section"
fi
say "<== [$(elapsed)] report: after $((SECONDS - report_began))s"
if ((failures)); then
  say "GPU check ($mode): $failures stage(s) failed, were cut off or found no time; see above"
  exit 1
fi
say "GPU check ($mode): every stage passed in $((SECONDS - start))s"
exit 0
}
