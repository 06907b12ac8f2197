#!/usr/bin/env bash
# The GPU check, one command for a lent Linux CUDA machine that reaches no network (CUDA 13, nvcc, cmake,
# Python with torch and peft; Node.js maybe not): builds the CUDA llama.cpp tools and ggml backend from
# the source node-llama-cpp bundles, generates the Qwen3-4B-shape random-weight model, then
#   1. checks the trainer on CUDA (log-probs and gradients against the CPU trainer, finite differences),
#   2. runs `catrl bench train` on CUDA against PyTorch+PEFT (bf16) on the same GPU,
#   3. runs `catrl bench rollouts` against llama-batched-bench built with CUDA,
# and writes every figure to one JSON. Budget: under 10 minutes on an H200 (each step has a timeout).
#
#   bench/gpu/pack.sh          # here, once: Node, pruned node_modules, dist/, llama.cpp source -> .gpu-carry/
#   bench/gpu/check.sh         # there, with .gpu-carry carried; results in $OUT (else bench/results/)
#   bench/gpu/check.sh --dry-run   # the same steps on CPU with the tiny preset (CI runs this)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

export CATRL_CACHE="${CATRL_CACHE:-$HOME/.cache/catrl}"
CACHE="$CATRL_CACHE"
CARRY="$ROOT/.gpu-carry"
PY="${CATRL_PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/catrl-gpu-check.XXXXXX")"
T_START=$(date +%s)
if ((DRY)); then
  BACKEND=cpu PRESET=tiny CASES=2x8+8 REPEATS=1 THREADS=1 ROLL_TOKENS=8 ROLL_G=4
  RESULT="${CHECK_OUT:-$WORK/gpu-check-dry-run.json}"
else
  # G = 8 rollouts of 1,536 tokens is the paper's MATH setting; 1 x is the single-sequence figure.
  BACKEND=cuda PRESET=qwen3-4b CASES=1x256+1536,8x256+1536 REPEATS=2 THREADS=4 ROLL_TOKENS=256 ROLL_G=16
  RESULT="${CHECK_OUT:-${OUT:-$ROOT/bench/results}/gpu-check-$(hostname).json}"
fi
MODEL="$CACHE/models/$PRESET-q8_0-seed1.gguf" # bench train's --preset path (bench/train.ts)
LLAMA_BUILD="$CACHE/llama.cpp-cuda"
FAILED=0
# Step timeouts are set for the GPU machine's budget; a shared development or CI machine may be slower.
TIMEOUT_SCALE="${CHECK_TIMEOUT_SCALE:-$((DRY ? 5 : 1))}"

log() { echo "check: $*" >&2; }
note() {
  log "$*"
  printf '%s\n' "$*" >>"$WORK/notes.txt"
}
# step NAME TIMEOUT_S CMD...: runs CMD with its output on stderr and in $WORK/NAME.log, records rc and time.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(date +%s)
  limit=$((limit * TIMEOUT_SCALE))
  log "$name (at most ${limit} s)..."
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/$name.log" >&2
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  printf '{"step":"%s","rc":%d,"seconds":%d}\n' "$name" "$rc" "$dt" >>"$WORK/steps.jsonl"
  if ((rc == 0)); then log "$name ok (${dt} s)"; else
    log "$name FAILED (rc $rc after ${dt} s; 124 = timed out)"
    FAILED=1
  fi
  return "$rc"
}
# xz may be missing on a bare image; Python's lzma reads the same files.
unxz_to() { # unxz_to FILE.xz DEST
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
untar_xz() { # untar_xz FILE.tar.xz DIR
  mkdir -p "$2"
  if command -v xz >/dev/null; then tar -C "$2" -xJf "$1"; else "$PY" -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; fi
}

# --- what travelled in .gpu-carry (bench/gpu/pack.sh) ---------------------------------------------
if [[ -d "$CARRY" ]]; then
  if [[ ! -f dist/src/cli/main.js || ! -f native/build/Release/catrl_trainer.node ]] && [[ -f "$CARRY/app.tar.xz" ]]; then
    log "unpacking dist/ and the trainer addon"
    untar_xz "$CARRY/app.tar.xz" "$ROOT"
  fi
  if [[ ! -f node_modules/zod/package.json && -f "$CARRY/node_modules.tar.xz" ]]; then
    log "unpacking the pruned node_modules"
    [[ -L node_modules ]] && rm -f node_modules # a link to the development machine's copy
    untar_xz "$CARRY/node_modules.tar.xz" "$ROOT/node_modules"
  fi
  if [[ ! -f "$CACHE/llama.cpp/CMakeLists.txt" && -f "$CARRY/llama.cpp.tar.xz" ]]; then
    log "unpacking the llama.cpp source"
    untar_xz "$CARRY/llama.cpp.tar.xz" "$CACHE/llama.cpp"
  fi
fi

# --- Node ------------------------------------------------------------------------------------------
NODE="$(command -v node || true)"
if [[ -n "$NODE" ]] && (("$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" < 20)); then
  log "$NODE is older than Node 20; looking for the carried one"
  NODE=""
fi
if [[ -z "$NODE" && -f "$CARRY/node.xz" ]]; then
  mkdir -p "$CACHE/node"
  unxz_to "$CARRY/node.xz" "$CACHE/node/node" && chmod +x "$CACHE/node/node" && NODE="$CACHE/node/node"
fi
if [[ -z "$NODE" ]]; then
  note "no Node.js >= 20 here and no .gpu-carry/node.xz (run bench/gpu/pack.sh before sending): only the PyTorch+PEFT and llama.cpp parts run"
elif [[ ! -f dist/src/cli/main.js || ! -f node_modules/zod/package.json ]]; then
  note "Node is here but dist/ or node_modules is not (run npm run build, or bench/gpu/pack.sh): only the PyTorch+PEFT and llama.cpp parts run"
  NODE=""
fi
CATRL=("$NODE" "$ROOT/dist/src/cli/main.js")

# --- CUDA libraries and the llama.cpp build --------------------------------------------------------
if ((!DRY)); then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$WORK/gpu.txt" 2>&1 || true
  # libcudart/libcublas 13 live in the nvidia-* wheels' lib folders (and in the toolkit)
  NV_LIBS="$("$PY" -c 'import glob,os,nvidia; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "*", "lib")))))' 2>/dev/null || true)"
  export LD_LIBRARY_PATH="${NV_LIBS:+$NV_LIBS:}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Dynamic backends, as node-llama-cpp builds them: libggml-cuda.so then loads beside node-llama-cpp's
  # prebuilt libggml-base.so (same ggml release) for both the engine and the trainer.
  if [[ -f "$CACHE/llama.cpp/CMakeLists.txt" ]]; then
    step build-llama.cpp 330 bash -c "cmake -S '$CACHE/llama.cpp' -B '$LLAMA_BUILD' -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES='${CUDA_ARCH:-90}' -DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON \
      -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=OFF >/dev/null && cmake --build '$LLAMA_BUILD' --target llama-batched-bench ggml-cuda ggml-cpu -j '$(nproc)'"
    CUDA_PKG="node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda"
    if [[ -f "$LLAMA_BUILD/bin/libggml-cuda.so" && -d "$CUDA_PKG" && ! -f "$CUDA_PKG/libggml-cuda.so" ]]; then
      cp "$LLAMA_BUILD/bin/libggml-cuda.so" "$CUDA_PKG/"
    fi
    [[ -x "$LLAMA_BUILD/bin/llama-batched-bench" ]] && export CATRL_BATCHED_BENCH="$LLAMA_BUILD/bin/llama-batched-bench"
  else
    note "no llama.cpp source at $CACHE/llama.cpp (run bench/gpu/pack.sh before sending): no CUDA build"
  fi
elif [[ -x "$CACHE/llama.cpp-build/bin/llama-batched-bench" ]]; then
  export CATRL_BATCHED_BENCH="$CACHE/llama.cpp-build/bin/llama-batched-bench"
else
  note "dry run: llama-batched-bench is not built here (bench/llama-cpp/build-batched-bench.sh builds it, minutes): the rollout bench runs the engine alone"
fi

# --- the model, the trainer check, the benchmarks ----------------------------------------------------
if [[ -n "$NODE" ]]; then
  if [[ ! -f "$MODEL" ]]; then
    mkdir -p "$(dirname "$MODEL")"
    step model 240 "${CATRL[@]}" model make --preset "$PRESET" --type q8_0 --seed 1 --out "$MODEL.tmp" &&
      mv "$MODEL.tmp" "$MODEL"
  fi
  step trainer-check 120 "$NODE" "$ROOT/dist/bench/gpu/trainer-check.js" --backend "$BACKEND" --out "$WORK/trainer-check.json" ||
    note "the trainer check failed on $BACKEND: the speed figures below are of a trainer whose results differ from the CPU's"
  step bench-train 330 "${CATRL[@]}" bench train --preset "$PRESET" --backend "$BACKEND" --threads "$THREADS" \
    --cases "$CASES" --grad-modes transpose --repeats "$REPEATS" --anchor peft --python "$PY" \
    --out "$WORK/train.json"
  ROLL_VARIANTS=engine,llama.cpp
  ROLL_GPU=()
  if ((!DRY)); then
    if "${CATRL[@]}" bench rollouts --help 2>/dev/null | grep -q -- "--gpu"; then
      ROLL_GPU=(--gpu cuda)
    else
      ROLL_VARIANTS=llama.cpp
      note "catrl bench rollouts has no --gpu option yet: only llama-batched-bench (CUDA) was measured there"
    fi
  fi
  [[ -f "$MODEL" ]] && step bench-rollouts 150 "${CATRL[@]}" bench rollouts --model "$MODEL" --threads "$THREADS" \
    --max-tokens "$ROLL_TOKENS" -G "$ROLL_G" --prompts 1 --repeats 1 --variants "$ROLL_VARIANTS" --no-build \
    "${ROLL_GPU[@]}" --out "$WORK/rollouts.json"
elif ((!DRY)); then
  # No Node: the anchor alone, on the Qwen3-4B shape (src/modelgen/presets.ts), so the GPU time still
  # yields PEFT's figures.
  SHAPE='{"arch":"qwen3","n_vocab":151936,"n_embd":2560,"n_layer":36,"n_head":32,"n_head_kv":8,"head_dim":128,"n_ff":9728,"rope_freq_base":1000000,"rms_eps":1e-6,"context_length":40960,"tied_embeddings":true}'
  step peft-only 300 bash -c "'$PY' bench/anchors/peft_step.py --shape '$SHAPE' --device cuda --threads $THREADS --seqs 1 \
    --prompt-tokens 256 --completion-tokens 1536 --repeats $REPEATS > '$WORK/peft.json'"
fi

# --- one JSON -------------------------------------------------------------------------------------
mkdir -p "$(dirname "$RESULT")"
python3 - "$WORK" "$RESULT" "$DRY" "$(($(date +%s) - T_START))" <<'EOF'
import json, os, socket, sys, datetime
work, result, dry, seconds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
def load(name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def lines(name):
    try:
        with open(os.path.join(work, name)) as f:
            return [l.strip() for l in f if l.strip()]
    except OSError:
        return []
out = {
    "check": "gpu",
    "dryRun": dry,
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "host": socket.gethostname(),
    "gpu": lines("gpu.txt"),
    "loadavg": list(os.getloadavg()),
    "seconds": seconds,
    "steps": [json.loads(l) for l in lines("steps.jsonl")],
    "notes": lines("notes.txt"),
    "trainerCheck": load("trainer-check.json"),
    "train": load("train.json"),
    "rollouts": load("rollouts.json"),
    "peftOnly": load("peft.json"),
}
tmp = result + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=2)
os.replace(tmp, result)
EOF
log "$(($(date +%s) - T_START)) s; results: $RESULT"
exit "$FAILED"
