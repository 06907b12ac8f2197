#!/usr/bin/env bash
# Builds a llama.cpp tool (default llama-batched-bench; `$0 llama-server` for the server) from the source
# node-llama-cpp bundles, so what we compare against runs exactly the llama.cpp release our engine links.
# Built once into a cache outside the repo; prints the binary's path on the last line of stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUNDLE="$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
CACHE="${CATRL_CACHE:-$HOME/.cache/catrl}"
SRC="$CACHE/llama.cpp"
BUILD="$CACHE/llama.cpp-build"
TARGET="${1:-llama-batched-bench}"
BIN="$BUILD/bin/$TARGET"
JOBS="${JOBS:-2}"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
[[ -f "$BUNDLE" ]] || { echo "missing $BUNDLE: run npm install first" >&2; exit 1; }
mkdir -p "$CACHE"
# A lock, because the model generator clones the same bundle for its vocab files.
exec 9>"$CACHE/llama.cpp.lock"
flock 9
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  # Clone beside and rename, so that a half-finished clone is never taken for a source tree; another
  # process (without our lock) may win the race, in which case its tree is used.
  TMP="$(mktemp -d "$CACHE/llama.cpp.clone.XXXXXX")"
  git clone --quiet "$BUNDLE" "$TMP/src" >&2
  mv -T "$TMP/src" "$SRC" 2>/dev/null || true
  rm -rf "$TMP"
fi
[[ -f "$SRC/CMakeLists.txt" ]] || { echo "no llama.cpp source at $SRC" >&2; exit 1; }
# Ninja when the machine has it (faster no-op rebuilds), else make.
GENERATOR="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && GENERATOR=Ninja
cmake -S "$SRC" -B "$BUILD" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON \
  -DGGML_NATIVE=ON >&2
cmake --build "$BUILD" --target "$TARGET" -j "$JOBS" >&2
echo "$BIN"
