#!/usr/bin/env bash
# Packs what bench/gpu/check.sh needs on a GPU machine that reaches no network into .gpu-carry/ (git
# ignored; pass it as the one carried path, at most 64 MiB): the Node binary, a pruned node_modules,
# the built dist/ and trainer addon, and the llama.cpp source node-llama-cpp bundles (trimmed).
#   bench/gpu/pack.sh            # then, on the GPU machine: bench/gpu/check.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CARRY="$ROOT/.gpu-carry"
CACHE="${CATRL_CACHE:-$HOME/.cache/catrl}"
XZ="xz -6 -T${JOBS:-2}"
# The carry limit, with room for the working tree's own small files.
LIMIT_BYTES=$((60 * 1024 * 1024))
mkdir -p "$CARRY"

[[ -f dist/src/cli/main.js ]] || { echo "pack: build first (npm run build)" >&2; exit 1; }
[[ -f native/build/Release/catrl_trainer.node ]] || { echo "pack: the trainer addon is not built (node native/build.mjs)" >&2; exit 1; }

# Node: the binary alone (the GPU machine may have none); its shared-library needs are glibc's only.
NODE_BIN="$(readlink -f "$(command -v node)")"
if [[ ! -f "$CARRY/node.xz" || "$NODE_BIN" -nt "$CARRY/node.xz" ]]; then
  echo "pack: node $(node --version) ($(du -h "$NODE_BIN" | cut -f1))..." >&2
  $XZ < "$NODE_BIN" > "$CARRY/node.xz.tmp" && mv "$CARRY/node.xz.tmp" "$CARRY/node.xz"
fi

# node_modules without what only development or other platforms need; node-llama-cpp's CUDA package
# travels without its 159 MB libggml-cuda.so, which check.sh builds from the bundled source.
NM="$(readlink -f node_modules)"
echo "pack: node_modules (pruned)..." >&2
tar -C "$NM" -cf - \
  --exclude='./@node-llama-cpp/linux-arm64' --exclude='./@node-llama-cpp/linux-armv7l' \
  --exclude='./@node-llama-cpp/linux-x64-vulkan' --exclude='./@node-llama-cpp/linux-x64-cuda-ext' \
  --exclude='./@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so' \
  --exclude='./node-llama-cpp/llama/gitRelease.bundle' --exclude='./node-llama-cpp/llama/llama.cpp' \
  --exclude='./@biomejs' --exclude='./@typescript' --exclude='./typescript' --exclude='./@rolldown' \
  --exclude='./rolldown' --exclude='./lightningcss*' --exclude='./vite' --exclude='./vitest' \
  --exclude='./@vitest' --exclude='./@types' --exclude='./.cache' . |
  $XZ > "$CARRY/node_modules.tar.xz.tmp"
mv "$CARRY/node_modules.tar.xz.tmp" "$CARRY/node_modules.tar.xz"

echo "pack: dist/ and the trainer addon..." >&2
tar -cf - dist native/build/Release/catrl_trainer.node | $XZ > "$CARRY/app.tar.xz.tmp"
mv "$CARRY/app.tar.xz.tmp" "$CARRY/app.tar.xz"

# llama.cpp: what a CUDA build of ggml, libllama and llama-batched-bench needs, plus the two vocab
# GGUFs the model generator copies tokenizers from (Qwen, Llama 3).
if [[ ! -f "$CARRY/llama.cpp.tar.xz" ]]; then
  SRC="$CACHE/llama.cpp"
  if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    git clone --quiet node_modules/node-llama-cpp/llama/gitRelease.bundle "$SRC"
  fi
  echo "pack: llama.cpp source (trimmed)..." >&2
  tar -C "$SRC" -cf - CMakeLists.txt cmake ggml src include common tools vendor licenses LICENSE \
    models/ggml-vocab-qwen2.gguf models/ggml-vocab-llama-bpe.gguf | $XZ > "$CARRY/llama.cpp.tar.xz.tmp"
  mv "$CARRY/llama.cpp.tar.xz.tmp" "$CARRY/llama.cpp.tar.xz"
fi

total=$(du -cb "$CARRY"/*.xz | tail -1 | cut -f1)
ls -la "$CARRY" >&2
echo "pack: $((total / 1024 / 1024)) MiB in $CARRY" >&2
if ((total > LIMIT_BYTES)); then
  echo "pack: over the $((LIMIT_BYTES / 1024 / 1024)) MiB that may travel" >&2
  exit 1
fi
echo "$CARRY"
