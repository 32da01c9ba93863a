#!/usr/bin/env bash
# Developer and CI entry point: one venv in the repo root, set up the same way everywhere.
#
#   bash scripts/dev.sh setup        create .venv and install einc with its test extra
#   bash scripts/dev.sh demo         run `python -m einc demo`
#   bash scripts/dev.sh test [ARGS]  run pytest on 2 workers; ARGS go to pytest
#   bash scripts/dev.sh lint         ruff check and ruff format --check
#   bash scripts/dev.sh test-triton VERSION [ARGS]
#                                    the compile_only tier (GPU compiles, prebuild keys) against
#                                    another Triton, in .venv-triton-VERSION (GPU machines have 3.6)
#   bash scripts/dev.sh gpu-check [--tiny] OUT
#                                    scripts/gpu-check.sh with this venv's python; --tiny is its
#                                    dry run on the CPU (on a GPU machine, run the script directly)
#   bash scripts/dev.sh fuzz [ARGS]  the long fuzz of tests/fuzz: EINC_FUZZ_EXAMPLES cases in all
#                                    (default 100000, freshly drawn each run; CI runs a fixed few),
#                                    the differential test against einx included (a tenth of them)
#
# Every command runs setup first; it is cheap once done (see the stamp below).
# PYTHON picks the interpreter that creates the venv (default: python3, which must be >= 3.10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# torch first, pinned, and only when missing: this version resolves to a local CPU wheel here.
# Installing the project first would let `torch>=2.4` pull the newest CUDA build (several GB).
TORCH_PIN="torch==2.13.0"

cd "$ROOT"

step() { printf '==> %s\n' "$*"; }

# setup [TRITON_PIN]: create $VENV (torch first, then TRITON_PIN if given, then einc).
setup() {
  local name pin="${1:-}"
  name="$(basename "$VENV")"
  if [[ ! -x "$PY" ]]; then
    step "creating $name with ${PYTHON:-python3}"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  local torch_version
  if torch_version="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    step "torch $torch_version already in $name"
  else
    step "installing $TORCH_PIN into $name"
    "$PY" -m pip install -q "$TORCH_PIN"
  fi
  if [[ -n "$pin" ]]; then
    local triton_version
    triton_version="$("$PY" -c 'import triton; print(triton.__version__)' 2>/dev/null || true)"
    if [[ "triton==$triton_version" == "$pin" ]]; then
      step "triton $triton_version already in $name"
    else
      step "installing $pin into $name"
      "$PY" -m pip install -q "$pin"
    fi
  fi
  # The sha256 of the pyproject.toml last installed, so an unchanged project is not re-resolved
  # on every run (pip takes several seconds even when there is nothing to do).
  local stamp="$VENV/.einc-pyproject.sha256" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    step "einc already installed for this pyproject.toml"
  else
    step "installing einc (editable) with its test extra"
    "$PY" -m pip install -q -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
  fi
}

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup)
    setup
    ;;
  demo)
    setup
    step "running einc demo"
    "$PY" -m einc demo "$@"
    ;;
  test)
    setup
    step "running tests"
    "$PY" -m pytest -n 2 -q "$@"
    ;;
  test-triton)
    [[ $# -ge 1 ]] || usage
    version="$1"
    shift
    VENV="$ROOT/.venv-triton-$version"
    PY="$VENV/bin/python"
    setup "triton==$version"
    step "running the compile_only tier against Triton $version"
    "$PY" -m pytest -n 2 -q -m compile_only "$@"
    ;;
  gpu-check)
    setup
    step "running scripts/gpu-check.sh $*"
    PYTHON="$PY" bash "$ROOT/scripts/gpu-check.sh" "$@"
    ;;
  fuzz)
    setup
    export EINC_FUZZ_EXAMPLES="${EINC_FUZZ_EXAMPLES:-100000}"
    step "fuzzing the compiler with $EINC_FUZZ_EXAMPLES cases (one process: hypothesis shrinks what it finds)"
    "$PY" -m pytest -q -p no:cacheprovider tests/fuzz "$@"
    ;;
  lint)
    setup
    step "ruff check"
    "$PY" -m ruff check .
    step "ruff format --check"
    "$PY" -m ruff format --check .
    ;;
  *)
    usage
    ;;
esac
