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
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "== build"
cargo build --workspace --all-targets
echo "== rust tests (SQLite and PostgreSQL)"
scripts/with-postgres.sh cargo test --workspace --all-targets 2>&1 | tee -a "$log"
echo "== bindings"
scripts/check-bindings.sh 2>&1 | tee -a "$log"
echo "== kotlin (JVM, real library, real server)"
(cd android/jvm-tests && mvn -B -q -Dcongdan.target.dir="$root/target/debug" test)
for report in android/jvm-tests/target/surefire-reports/*.txt; do
  tail -n +4 "$report" | tee -a "$log"
done
# One closing line over every runner: cargo, the Swift parse checks, Surefire.
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
passed = failed = 0
for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed += int(p); failed += int(f)
for p, f in re.findall(r"swift syntax: (\d+) passed, (\d+) failed", text):
    passed += int(p); failed += int(f)
for run, fail, err in re.findall(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+)", text):
    passed += int(run) - int(fail) - int(err); failed += int(fail) + int(err)
print(f"{passed} passed, {failed} failed")
PY
