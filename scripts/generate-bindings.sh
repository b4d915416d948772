#!/usr/bin/env bash
# Generates the Kotlin and Swift bindings from the built congdan_ffi library (library mode: the
# bindings describe exactly what the library exports). Usage: generate-bindings.sh [OUT_ROOT]
# OUT_ROOT defaults to the repository; the check script passes a temporary directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
profile_dir="${CONGDAN_TARGET_DIR:-$root/target/debug}"
cd "$root"
cargo build -q -p congdan-ffi -p uniffi-bindgen
lib="$profile_dir/libcongdan_ffi.so"
[ -f "$lib" ] || lib="$profile_dir/libcongdan_ffi.dylib"
rm -rf "$out/android/bindings" "$out/ios/Sources/Congdan"
"$profile_dir/uniffi-bindgen" generate --no-format --library "$lib" --language kotlin --out-dir "$out/android/bindings" >/dev/null
"$profile_dir/uniffi-bindgen" generate --no-format --library "$lib" --language swift --out-dir "$out/ios/Sources/Congdan" >/dev/null
