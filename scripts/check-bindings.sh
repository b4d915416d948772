#!/usr/bin/env bash
# Fails when the committed bindings differ from a fresh generation, then checks the Swift
# bindings' syntax with tree-sitter-swift (no Swift toolchain needed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
"$root/scripts/generate-bindings.sh" "$fresh"
for part in android/bindings ios/Sources/Congdan; do
  if ! diff -r "$root/$part" "$fresh/$part" >/dev/null; then
    diff -r "$root/$part" "$fresh/$part" | head -40
    echo "bindings: $part is stale; run scripts/generate-bindings.sh and commit" >&2
    exit 1
  fi
done
echo "bindings: committed Kotlin and Swift bindings match a fresh generation"
python3 "$root/ios/check_swift_syntax.py" "$root/ios/Sources" "$root/ios/Shell"
