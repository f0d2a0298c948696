#!/usr/bin/env bash
# Bounded fuzzing run. With cargo-fuzz and a nightly toolchain: every target for
# FUZZ_SECONDS (default 30) each, starting from the committed seeds. Without them (the
# stable-only machines CI runs on): the same bodies over a deterministic mutation corpus via
# tests/fuzz_corpus.rs, RADMFA_FUZZ_ITERS inputs per target (default here 200000).
#
#   fuzz/run.sh                         # short run, as CI would
#   FUZZ_SECONDS=3600 fuzz/run.sh       # the longer run, e.g. before a release
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  # Every target runs even after one fails; crashes land in fuzz/artifacts/<target>/.
  failed=()
  for t in $(cargo +nightly fuzz list); do
    echo "==> cargo fuzz run $t (${SECS}s)"
    mkdir -p "fuzz/corpus/$t"
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -timeout=10 ||
      failed+=("$t")
  done
  if ((${#failed[@]})); then
    echo "==> failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
  fi
else
  echo "==> cargo-fuzz or nightly missing: stable corpus run (cargo install cargo-fuzz for more)"
  RADMFA_FUZZ_ITERS=${RADMFA_FUZZ_ITERS:-200000} cargo test --release --test fuzz_corpus
fi
