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
# FUZZ_FLAGS adds flags to `cargo fuzz run`. CI (scripts/test.sh) uses "--dev -s none": an
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
  failed=()
  # Listed first: a failing or empty list in the loop's head would run nothing and pass.
  targets=$("${FUZZ[@]}" list)
  if [[ -z "$targets" ]]; then
    echo "==> cargo fuzz list found no targets" >&2
    exit 1
  fi
  for t in $targets; do
    echo "==> cargo fuzz run $t (${SECS}s)"
    mkdir -p "fuzz/corpus/$t"
    # libFuzzer writes what it finds into the first corpus directory: a scratch one, so
    # the committed seeds (the second, read only) stay as reviewed and the tree stays clean.
    found=$(mktemp -d)
    "${FUZZ[@]}" run "${FLAGS[@]}" "$t" "$found" "fuzz/corpus/$t" -- -max_total_time="$SECS" -timeout=10 ||
      failed+=("$t")
    rm -rf "$found"
  done
  if ((${#failed[@]})); then
    echo "==> failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
  fi
else
  echo "==> cargo-fuzz missing: stable corpus run (cargo install cargo-fuzz for coverage-guided fuzzing)"
  RADMFA_FUZZ_ITERS=${RADMFA_FUZZ_ITERS:-200000} cargo test --release --test fuzz_corpus
fi
