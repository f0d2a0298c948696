#!/usr/bin/env bash
# The whole test suite: installs the real peers (slapd, radclient, pyrad, oathtool, …), then
# formatting, lints, unit and integration tests, and a short coverage-guided fuzzing run.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
export RADMFA_TEST_PYTHON="$PWD/.venv/bin/python"
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test (its binaries run several at a time: scripts/run-tests.py)"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$TARGET/tmp"
rm -f "$TARGET/tmp/timing-distribution.txt"
# Fails if a binary failed or an integration test file ran no test (a renamed module, a
# cfg gate: a broken harness, not a pass).
python3 scripts/run-tests.py
# The user-enumeration tests' latency distributions (libtest hides a passing test's output).
echo "==> reply latency, known user with a wrong password vs unknown user (tests/timing.rs)"
cat "$TARGET/tmp/timing-distribution.txt"
# The short coverage-guided fuzzing run (issue: "a short run in CI"); the longer one is
# documented in BENCHMARKS.md. A crash fails the suite, its input kept in fuzz/artifacts/.
echo "==> fuzzing (cargo-fuzz, ${FUZZ_SECONDS:-20} s per target)"
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
FUZZ_SECONDS=${FUZZ_SECONDS:-20} FUZZ_FLAGS="--dev -s none" fuzz/run.sh
