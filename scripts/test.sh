#!/usr/bin/env bash
# The whole test suite: installs the real peers (slapd, radclient, pyrad, oathtool, …), then
# formatting, lints, unit and integration tests. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"
export RADMFA_TEST_PYTHON="$PWD/.venv/bin/python"
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --all-targets 2>&1 | tee target/test-output.txt
# A run where a test binary found nothing to run is a broken harness, not a pass.
grep -q "test result: ok" target/test-output.txt
