#!/usr/bin/env bash
# Bounded fuzzing run. With cargo-fuzz (`cargo install cargo-fuzz`): every target for
# FUZZ_SECONDS (default 30) each, coverage-guided by libFuzzer, starting from the committed
# seeds. It uses a nightly toolchain if there is one, else the stable one with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags for the sanitizer and coverage; the stable
# toolchain ships the sanitizer runtimes, and the variable is set for this build only).
# Without cargo-fuzz: the same bodies over a deterministic mutation corpus via
# tests/fuzz_corpus.rs, RADMFA_FUZZ_ITERS inputs per target (default here 200000).
#
#   fuzz/run.sh                         # short run
#   FUZZ_SECONDS=3600 fuzz/run.sh       # the longer run, e.g. before a release
#
# FUZZ_JOBS targets run at a time (default 2, a core each). FUZZ_FLAGS adds flags to
# `cargo fuzz build` and `cargo fuzz run`. CI (scripts/test.sh) uses "--dev -s none": an
# unoptimised build without AddressSanitizer compiles in ~4 minutes on 2 cores instead of
# 10+, and radmfa's targets run no unsafe code of ours for ASan to watch.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
read -r -a FLAGS <<<"${FUZZ_FLAGS:-}"
FUZZ=()
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  FUZZ=(cargo +nightly fuzz)
elif cargo fuzz --version >/dev/null 2>&1; then
  FUZZ=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
if ((${#FUZZ[@]})); then
  # Every target runs even after one fails; crashes land in fuzz/artifacts/<target>/.
  failed=() started=()
  # Listed first: a failing or empty list in the loop's head would run nothing and pass.
  targets=$("${FUZZ[@]}" list)
  if [[ -z "$targets" ]]; then
    echo "==> cargo fuzz list found no targets" >&2
    exit 1
  fi
  # Built once, first: the runs then only start their binaries, FUZZ_JOBS (default 2) at
  # a time, each on a core of its own for its SECS (two `cargo fuzz run`s building at once
  # would only wait on each other's lock). Each run's output is shown when it ends.
  "${FUZZ[@]}" build "${FLAGS[@]}"
  logs=$(mktemp -d)
  fuzz_one() {
    local t=$1 found
    mkdir -p "fuzz/corpus/$t"
    # libFuzzer writes what it finds into the first corpus directory: a scratch one, so
    # the committed seeds (the second, read only) stay as reviewed and the tree stays clean.
    found=$(mktemp -d)
    "${FUZZ[@]}" run "${FLAGS[@]}" "$t" "$found" "fuzz/corpus/$t" -- -max_total_time="$SECS" -timeout=10
    local rc=$?
    rm -rf "$found"
    return $rc
  }
  show() {
    echo "==> cargo fuzz run $1 (${SECS}s)"
    cat "$logs/$1.log"
    [[ $(cat "$logs/$1.rc") == 0 ]] || failed+=("$1")
  }
  running=()
  for t in $targets; do
    if ((${#running[@]} >= ${FUZZ_JOBS:-2})); then
      wait "${running[0]}" || true
      show "${started[0]}"
      running=("${running[@]:1}")
      started=("${started[@]:1}")
    fi
    (
      set +e
      fuzz_one "$t" >"$logs/$t.log" 2>&1
      echo $? >"$logs/$t.rc"
    ) &
    running+=($!)
    started+=("$t")
  done
  for i in "${!running[@]}"; do
    wait "${running[$i]}" || true
    show "${started[$i]}"
  done
  rm -rf "$logs"
  if ((${#failed[@]})); then
    echo "==> failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
  fi
else
  echo "==> cargo-fuzz missing: stable corpus run (cargo install cargo-fuzz for coverage-guided fuzzing)"
  RADMFA_FUZZ_ITERS=${RADMFA_FUZZ_ITERS:-200000} cargo test --release --test fuzz_corpus
fi
