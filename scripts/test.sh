#!/usr/bin/env bash
# Every test of the project, in the order a failure is cheapest to see:
#   1. Rust: core, server (on SQLite and on a throwaway PostgreSQL), ffi, cli;
#   2. the committed Kotlin/Swift bindings equal a fresh generation, Swift parses;
#   3. Kotlin JUnit tests loading the real library in a JVM against a real server.
# Needs: cargo, PostgreSQL server binaries, python3 with tree-sitter-swift, JDK 17 and Maven
# (.ci/run installs them on a fresh machine).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
echo "== build"
cargo build --workspace --all-targets
cargo build -p uniffi-bindgen
echo "== rust tests (SQLite and PostgreSQL)"
scripts/with-postgres.sh cargo test --workspace --all-targets
echo "== bindings"
scripts/check-bindings.sh
echo "== kotlin (JVM, real library, real server)"
(cd android/jvm-tests && mvn -B -q -Dcongdan.target.dir="$root/target/debug" test)
for report in android/jvm-tests/target/surefire-reports/*.txt; do
  tail -n +4 "$report"
done
echo "== all tests passed"
