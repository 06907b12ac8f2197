// catrl native LoRA trainer: graph building, compute and tensor I/O on node-llama-cpp's own ggml.
//
// Deliberately thin: everything that needs no speed (configuration, packing sequences into
// micro-batches, advantages and per-token loss weights, schedules, checkpoint metadata, RNG and LoRA
// initialisation) lives in TypeScript (src/rl/trainer/). This file builds the decoder graph of
// llama / qwen2 / qwen3 the way llama.cpp does, differentiates the GRPO loss with ggml's autograd,
// accumulates gradients, applies AdamW and writes llama.cpp LoRA GGUF files.

#include <napi.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// ---------------------------------------------------------------------------------------------
// Backend selection. The backend libraries are node-llama-cpp's; loading them through ggml's
// registry (which lives in libggml.so, shared with node-llama-cpp) registers each one once, so
// node-llama-cpp and the trainer use the same CPU or CUDA backend instance of the library.

void quietLog(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

// Collects ggml's error lines while loading the CUDA backend, so the one-line error can say which
// library was missing instead of printing ggml's own line as well.
void captureLog(ggml_log_level level, const char* text, void* data) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) *(std::string*)data += text;
}

ggml_backend_t initBackend(const std::string& kind, const std::string& libDir, const std::string& cudaLib,
                           int threads) {
  ggml_backend_reg_count();  // forces the registry's static initialisation
  if (kind == "cpu") {
    if (!ggml_backend_reg_by_name("CPU")) {
      if (libDir.empty()) fail("no CPU backend registered and no backend library directory given");
      // ggml logs "loaded CPU backend from ..." at info level; keep stderr quiet for the CLI, and
      // restore whatever logger node-llama-cpp may have installed (the callback is process-global)
      ggml_log_callback prev = nullptr;
      void* prevData = nullptr;
      ggml_log_get(&prev, &prevData);
      ggml_log_set(quietLog, nullptr);
      ggml_backend_load_all_from_path(libDir.c_str());
      ggml_log_set(prev, prevData);
    }
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev) fail("ggml CPU backend could not be loaded from " + libDir);
    ggml_backend_t be = ggml_backend_dev_init(dev, nullptr);
    if (!be) fail("ggml CPU backend failed to initialise");
    auto setThreads = (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads");
    if (setThreads) setThreads(be, threads);
    return be;
  }
  if (kind == "cuda") {
    if (!ggml_backend_reg_by_name("CUDA")) {
      if (cudaLib.empty()) fail("CUDA backend unavailable: node-llama-cpp's CUDA package was not found");
      ggml_log_callback prev = nullptr;
      void* prevData = nullptr;
      ggml_log_get(&prev, &prevData);
      std::string log;
      ggml_log_set(captureLog, &log);
      ggml_backend_reg_t reg = ggml_backend_load(cudaLib.c_str());
      ggml_log_set(prev, prevData);
      if (!reg) {
        // ggml's line reads "load_backend: failed to load <path>: <dlerror>"; keep the dlerror part
        std::string why = log.substr(0, log.find('\n'));
        size_t at = why.rfind(".so: ");
        why = at == std::string::npos ? "" : why.substr(at + 5);
        fail("CUDA backend unavailable: could not load " + cudaLib + (why.empty() ? "" : " (" + why + ")") +
             "; it needs a CUDA GPU and libcudart.so.13 / libcublas.so.13 on the library path");
      }
    }
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CUDA");
    if (!reg || ggml_backend_reg_dev_count(reg) == 0) fail("CUDA backend unavailable: no CUDA device found");
    ggml_backend_t be = ggml_backend_dev_init(ggml_backend_reg_dev_get(reg, 0), nullptr);
    if (!be) fail("CUDA backend failed to initialise");
    return be;
  }
  fail("unknown backend '" + kind + "' (expected cpu or cuda)");
}

// ---------------------------------------------------------------------------------------------
// GGUF metadata helpers

int64_t ggufKeyInt(gguf_context* g, const std::string& key, int64_t def, bool required = false) {
  int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (required) fail("model is missing metadata key " + key);
    return def;
  }
  switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(g, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(g, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(g, id);
    case GGUF_TYPE_UINT64: return (int64_t)gguf_get_val_u64(g, id);
    case GGUF_TYPE_INT64: return gguf_get_val_i64(g, id);
    case GGUF_TYPE_ARRAY: {
      // per-layer arrays (e.g. head counts): the trainer supports uniform layers only
      size_t n = gguf_get_arr_n(g, id);
      if (n == 0) return def;
      auto t = gguf_get_arr_type(g, id);
      const void* d = gguf_get_arr_data(g, id);
      int64_t first = t == GGUF_TYPE_INT32 ? ((const int32_t*)d)[0] : ((const uint32_t*)d)[0];
      for (size_t i = 1; i < n; i++) {
        int64_t v = t == GGUF_TYPE_INT32 ? ((const int32_t*)d)[i] : ((const uint32_t*)d)[i];
        if (v != first) fail("per-layer varying " + key + " is not supported by the trainer");
      }
      return first;
    }
    default: fail("metadata key " + key + " has an unexpected type");
  }
}

double ggufKeyFloat(gguf_context* g, const std::string& key, double def) {
  int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return def;
  switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(g, id);
    case GGUF_TYPE_FLOAT64: return gguf_get_val_f64(g, id);
    default: return (double)ggufKeyInt(g, key, 0);
  }
}

std::string ggufKeyStr(gguf_context* g, const std::string& key, const std::string& def) {
  int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_STRING) return def;
  return gguf_get_val_str(g, id);
}

// ---------------------------------------------------------------------------------------------

struct Hparams {
  std::string arch;
  int64_t nVocab = 0, nEmbd = 0, nLayer = 0, nHead = 0, nHeadKv = 0, headDim = 0, nFf = 0, nRot = 0;
  int64_t nCtxOrig = 0;
  float eps = 1e-5f, ropeBase = 10000.f, ropeFreqScale = 1.f;
  int ropeMode = 0;  // GGML_ROPE_TYPE_NORMAL for llama, NEOX for qwen2/qwen3 (as llama_model_rope_type)
  float attnScale = 0.f;  // softmax scale of QK^T (1/sqrt(head_dim) unless the architecture says otherwise)
  // gemma3 (llama.cpp src/models/gemma3.cpp)
  float embdScale = 1.f;  // token embeddings times sqrt(n_embd)
  bool geluFfn = false;   // GELU(gate) * up instead of SiLU(gate) * up
  int64_t nSwa = 0;       // sliding window of the local layers (0: none)
};

enum Proj { P_Q = 0, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, P_COUNT };
const char* kProjKey[P_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
const char* kProjTensor[P_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

struct Layer {
  ggml_tensor* attnNorm = nullptr;
  ggml_tensor* ffnNorm = nullptr;
  ggml_tensor* qNorm = nullptr;
  ggml_tensor* kNorm = nullptr;
  ggml_tensor* bias[P_COUNT] = {};
  ggml_tensor* w[P_COUNT] = {};
  ggml_tensor* ropeFreqs = nullptr;
  ggml_tensor* postAttnNorm = nullptr;  // gemma3: RMS norm of each branch's output before the residual add
  ggml_tensor* postFfnNorm = nullptr;
  bool swa = false;  // local (sliding-window) attention layer
  float ropeBase = 0.f, ropeFreqScale = 1.f;
};

struct LoraPair {
  std::string base;  // base tensor name, e.g. blk.0.attn_q.weight
  ggml_tensor* a;    // ne [n_in, r]
  ggml_tensor* b;    // ne [r, n_out]
  std::vector<float> hostA, hostB;  // master copies (authoritative; uploaded after every update)
  std::vector<float> gA, gB, mA, mB, vA, vB;
};

struct BatchInput {
  std::vector<int32_t> tokens, pos, outRows, targets;  // targets[n]: the token row outRows[n] predicts
  int64_t nSeq = 1;  // tokens holds nSeq sequences, each padded to tokens.size() / nSeq rows
  float invTemp = 1.f;   // 1 / sampling temperature
  bool whole = false;    // one graph for the whole model (else layer by layer)
  int64_t headChunk = 0;  // target positions per output-head graph (0: all at once)
  // loss inputs (per selected row)
  std::vector<float> old, ref, negAdvW, betaW, clipC, sgn;
  bool withKl = false;
};

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Where an operation's time went: building + allocating graphs vs computing them.
struct TimeAcc {
  double graphMs = 0, computeMs = 0;
};

struct StepResult {
  double loss = 0;
  std::vector<float> logp;
  double ms = 0;
  TimeAcc t;
};

class Trainer;

// Runs `work` on the libuv thread pool and resolves a promise with `done(env)`; exceptions become
// rejections. Keeps the event loop free during compute.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                std::atomic<bool>* busy)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)), busy_(busy) {}
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    busy_->store(false);
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& err) override {
    busy_->store(false);
    deferred_.Reject(err.Value());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::atomic<bool>* busy_;
};

std::vector<int32_t> i32Array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<float> f32Array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array toF32(Napi::Env env, const std::vector<float>& v) {
  auto a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

class Trainer : public Napi::ObjectWrap<Trainer> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Trainer",
                       {
                           InstanceMethod("describe", &Trainer::Describe),
                           InstanceMethod("forward", &Trainer::Forward),
                           InstanceMethod("accumulate", &Trainer::Accumulate),
                           InstanceMethod("applyAdamW", &Trainer::ApplyAdamW),
                           InstanceMethod("zeroGrad", &Trainer::ZeroGrad),
                           InstanceMethod("getGrads", &Trainer::GetGrads),
                           InstanceMethod("getState", &Trainer::GetState),
                           InstanceMethod("setState", &Trainer::SetState),
                           InstanceMethod("exportAdapter", &Trainer::ExportAdapter),
                           InstanceMethod("setThreads", &Trainer::SetThreads),
                           InstanceMethod("memory", &Trainer::Memory),
                           InstanceMethod("plan", &Trainer::Plan),
                           InstanceMethod("enableTranspose", &Trainer::EnableTranspose),
                           InstanceMethod("dispose", &Trainer::Dispose),
                       });
  }

  explicit Trainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Trainer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "options object expected");
    auto o = info[0].As<Napi::Object>();
    modelPath_ = o.Get("modelPath").As<Napi::String>().Utf8Value();
    std::string backendKind = o.Get("backend").As<Napi::String>().Utf8Value();
    std::string libDir = o.Has("libDir") ? o.Get("libDir").As<Napi::String>().Utf8Value() : "";
    std::string cudaLib = o.Has("cudaLib") ? o.Get("cudaLib").As<Napi::String>().Utf8Value() : "";
    threads_ = o.Get("threads").As<Napi::Number>().Int32Value();
    rank_ = o.Get("rank").As<Napi::Number>().Int32Value();
    alpha_ = o.Get("alpha").As<Napi::Number>().FloatValue();
    gradTranspose_ = o.Get("gradMode").As<Napi::String>().Utf8Value() == "transpose";
    auto targets = o.Get("targets").As<Napi::Array>();
    for (uint32_t i = 0; i < targets.Length(); i++) {
      std::string t = targets.Get(i).As<Napi::String>().Utf8Value();
      bool found = false;
      for (int p = 0; p < P_COUNT; p++)
        if (t == kProjKey[p]) target_[p] = found = true;
      if (!found) throw Napi::Error::New(env, "unknown LoRA target " + t);
    }
    try {
      backend_ = initBackend(backendKind, libDir, cudaLib, threads_);
      isCpu_ = backendKind == "cpu";
      loadModel();
      createLora();
      if (gradTranspose_) buildTransposed();
    } catch (const std::exception& e) {
      release();
      throw Napi::Error::New(env, e.what());
    }
  }

  ~Trainer() override { release(); }

 private:
  // ---- state
  std::string modelPath_;
  int threads_ = 1;
  int rank_ = 8;
  float alpha_ = 16.f;
  bool gradTranspose_ = true;
  bool target_[P_COUNT] = {};
  bool isCpu_ = true;
  Hparams hp_;
  ggml_backend_t backend_ = nullptr;
  ggml_context* wctx_ = nullptr;  // base weights (from gguf, no_alloc)
  gguf_context* gguf_ = nullptr;
  ggml_backend_buffer_t wbuf_ = nullptr;
  ggml_context* tctx_ = nullptr;  // transposed frozen weights for the input-gradient matmuls
  ggml_backend_buffer_t tbuf_ = nullptr;
  ggml_context* lctx_ = nullptr;  // LoRA parameters
  ggml_backend_buffer_t lbuf_ = nullptr;
  ggml_gallocr_t galloc_ = nullptr;
  ggml_tensor* tokEmbd_ = nullptr;
  ggml_tensor* outNorm_ = nullptr;
  ggml_tensor* output_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<LoraPair> lora_;
  std::map<std::pair<int, int>, size_t> loraIndex_;  // (layer, proj) -> lora_ index
  std::unordered_map<const ggml_tensor*, ggml_tensor*> transposed_;
  std::atomic<bool> busy_{false};
  size_t computeBytes_ = 0;

  void release() {
    if (galloc_) ggml_gallocr_free(galloc_), galloc_ = nullptr;
    if (lbuf_) ggml_backend_buffer_free(lbuf_), lbuf_ = nullptr;
    if (tbuf_) ggml_backend_buffer_free(tbuf_), tbuf_ = nullptr;
    if (wbuf_) ggml_backend_buffer_free(wbuf_), wbuf_ = nullptr;
    if (lctx_) ggml_free(lctx_), lctx_ = nullptr;
    if (tctx_) ggml_free(tctx_), tctx_ = nullptr;
    if (wctx_) ggml_free(wctx_), wctx_ = nullptr;
    if (gguf_) gguf_free(gguf_), gguf_ = nullptr;
    if (backend_) ggml_backend_free(backend_), backend_ = nullptr;
  }

  ggml_tensor* tensor(const std::string& name, bool required = true) {
    ggml_tensor* t = ggml_get_tensor(wctx_, name.c_str());
    if (!t && required) fail("model is missing tensor " + name);
    return t;
  }

  void loadModel() {
    gguf_init_params gp = {/*no_alloc*/ true, &wctx_};
    gguf_ = gguf_init_from_file(modelPath_.c_str(), gp);
    if (!gguf_) fail("cannot read GGUF file " + modelPath_);
    hp_.arch = ggufKeyStr(gguf_, "general.architecture", "");
    const std::string& a = hp_.arch;
    if (a != "llama" && a != "qwen2" && a != "qwen3" && a != "gemma3")
      fail("unsupported architecture '" + a + "' (the trainer supports: llama, qwen2, qwen3, gemma3)");
    hp_.nEmbd = ggufKeyInt(gguf_, a + ".embedding_length", 0, true);
    hp_.nLayer = ggufKeyInt(gguf_, a + ".block_count", 0, true);
    hp_.nFf = ggufKeyInt(gguf_, a + ".feed_forward_length", 0, true);
    hp_.nHead = ggufKeyInt(gguf_, a + ".attention.head_count", 0, true);
    hp_.nHeadKv = ggufKeyInt(gguf_, a + ".attention.head_count_kv", hp_.nHead);
    hp_.headDim = ggufKeyInt(gguf_, a + ".attention.key_length", hp_.nEmbd / hp_.nHead);
    if (ggufKeyInt(gguf_, a + ".attention.value_length", hp_.headDim) != hp_.headDim)
      fail("models whose key and value head sizes differ are not supported");
    hp_.nRot = ggufKeyInt(gguf_, a + ".rope.dimension_count", hp_.headDim);
    hp_.nCtxOrig = ggufKeyInt(gguf_, a + ".context_length", 0);
    hp_.nCtxOrig = ggufKeyInt(gguf_, a + ".rope.scaling.original_context_length", hp_.nCtxOrig);
    hp_.eps = (float)ggufKeyFloat(gguf_, a + ".attention.layer_norm_rms_epsilon", 1e-5);
    hp_.ropeBase = (float)ggufKeyFloat(gguf_, a + ".rope.freq_base", 10000.0);
    std::string scaling = ggufKeyStr(gguf_, a + ".rope.scaling.type", "linear");
    if (scaling != "linear" && scaling != "none")
      fail("rope scaling type '" + scaling + "' is not supported by the trainer (none or linear only)");
    double factor = ggufKeyFloat(gguf_, a + ".rope.scaling.factor", 0.0);
    if (factor == 0.0) factor = ggufKeyFloat(gguf_, a + ".rope.scale_linear", 0.0);
    hp_.ropeFreqScale = factor == 0.0 ? 1.0f : (float)(1.0 / factor);
    hp_.ropeMode = a == "llama" ? GGML_ROPE_TYPE_NORMAL : GGML_ROPE_TYPE_NEOX;

    tokEmbd_ = tensor("token_embd.weight");
    hp_.nVocab = tokEmbd_->ne[1];
    outNorm_ = tensor("output_norm.weight");
    output_ = tensor("output.weight", false);
    if (!output_) output_ = tokEmbd_;  // tied embeddings
    ggml_tensor* ropeFreqs = tensor("rope_freqs.weight", false);
    layers_.resize(hp_.nLayer);
    for (int il = 0; il < hp_.nLayer; il++) {
      Layer& L = layers_[il];
      std::string p = "blk." + std::to_string(il) + ".";
      L.attnNorm = tensor(p + "attn_norm.weight");
      L.ffnNorm = tensor(p + "ffn_norm.weight");
      for (int k = 0; k < P_COUNT; k++) {
        L.w[k] = tensor(p + kProjTensor[k] + ".weight");
        L.bias[k] = tensor(p + kProjTensor[k] + ".bias", false);
      }
      if (a == "qwen3" || a == "gemma3") {
        L.qNorm = tensor(p + "attn_q_norm.weight");
        L.kNorm = tensor(p + "attn_k_norm.weight");
      }
      L.ropeFreqs = ropeFreqs;
      L.ropeBase = hp_.ropeBase, L.ropeFreqScale = hp_.ropeFreqScale;
    }
    hp_.attnScale = 1.0f / std::sqrt((float)hp_.headDim);
    if (a == "gemma3") loadGemma3();

    wbuf_ = ggml_backend_alloc_ctx_tensors(wctx_, backend_);
    if (!wbuf_) fail("out of memory allocating the model weights");
    ggml_backend_buffer_set_usage(wbuf_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    FILE* f = std::fopen(modelPath_.c_str(), "rb");
    if (!f) fail("cannot open " + modelPath_);
    const size_t dataOff = gguf_get_data_offset(gguf_);
    std::vector<uint8_t> tmp;
    bool host = ggml_backend_buffer_is_host(wbuf_);
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf_); i++) {
      ggml_tensor* t = ggml_get_tensor(wctx_, gguf_get_tensor_name(gguf_, i));
      size_t n = ggml_nbytes(t);
      void* dst = t->data;
      if (!host) tmp.resize(n), dst = tmp.data();
      if (fseeko(f, (off_t)(dataOff + gguf_get_tensor_offset(gguf_, i)), SEEK_SET) != 0 ||
          std::fread(dst, 1, n, f) != n) {
        std::fclose(f);
        fail("truncated GGUF file " + modelPath_);
      }
      if (!host) ggml_backend_tensor_set(t, tmp.data(), 0, n);
    }
    std::fclose(f);
  }

  // gemma3's hyperparameters as llama_model_gemma3::load_arch_hparams reads them, and its extra norms.
  void loadGemma3() {
    const std::string a = "gemma3";
    hp_.embdScale = std::sqrt((float)hp_.nEmbd);
    hp_.geluFfn = true;
    if (ggufKeyFloat(gguf_, a + ".final_logit_softcapping", 0.0) != 0.0)
      fail("gemma3 with final_logit_softcapping is not supported by the trainer");
    hp_.nSwa = ggufKeyInt(gguf_, a + ".attention.sliding_window", 0);
    if (hp_.nSwa > 0) {
      int64_t period = ggufKeyInt(gguf_, a + ".attention.sliding_window_pattern", 6);
      float baseSwa = (float)ggufKeyFloat(gguf_, a + ".rope.freq_base_swa", 10000.0);
      for (int il = 0; il < hp_.nLayer; il++) {
        Layer& L = layers_[il];
        // llama_hparams::set_swa_pattern: the last layer of each period is global; local layers take
        // their own RoPE base and no RoPE scaling (rope_freq_scale_train_swa = 1)
        L.swa = period == 0 || (il % period < period - 1);
        if (L.swa) L.ropeBase = baseSwa, L.ropeFreqScale = 1.0f;
      }
    }
    // gemma_pytorch's query_pre_attn_scalar: n_embd / n_head for the 27B (62 layers), head_dim otherwise
    if (hp_.nLayer == 62) hp_.attnScale = 1.0f / std::sqrt((float)(hp_.nEmbd / hp_.nHead));
    for (int il = 0; il < hp_.nLayer; il++) {
      std::string p = "blk." + std::to_string(il) + ".";
      layers_[il].postAttnNorm = tensor(p + "post_attention_norm.weight");
      layers_[il].postFfnNorm = tensor(p + "post_ffw_norm.weight");
    }
  }

  void createLora() {
    size_t n = 0;
    for (int il = 0; il < hp_.nLayer; il++)
      for (int k = 0; k < P_COUNT; k++) n += target_[k] ? 2 : 0;
    ggml_init_params ip = {ggml_tensor_overhead() * (n + 1), nullptr, true};
    lctx_ = ggml_init(ip);
    for (int il = 0; il < hp_.nLayer; il++) {
      for (int k = 0; k < P_COUNT; k++) {
        if (!target_[k]) continue;
        ggml_tensor* w = layers_[il].w[k];
        LoraPair lp;
        lp.base = ggml_get_name(w);
        lp.a = ggml_new_tensor_2d(lctx_, GGML_TYPE_F32, w->ne[0], rank_);
        lp.b = ggml_new_tensor_2d(lctx_, GGML_TYPE_F32, rank_, w->ne[1]);
        ggml_set_name(lp.a, (lp.base + ".lora_a").c_str());
        ggml_set_name(lp.b, (lp.base + ".lora_b").c_str());
        ggml_set_param(lp.a);
        ggml_set_param(lp.b);
        size_t na = ggml_nelements(lp.a), nb = ggml_nelements(lp.b);
        lp.hostA.assign(na, 0.f), lp.hostB.assign(nb, 0.f);
        lp.gA.assign(na, 0.f), lp.gB.assign(nb, 0.f);
        lp.mA.assign(na, 0.f), lp.mB.assign(nb, 0.f), lp.vA.assign(na, 0.f), lp.vB.assign(nb, 0.f);
        loraIndex_[{il, k}] = lora_.size();
        lora_.push_back(std::move(lp));
      }
    }
    if (!lora_.empty()) {
      lbuf_ = ggml_backend_alloc_ctx_tensors(lctx_, backend_);
      if (!lbuf_) fail("out of memory allocating LoRA tensors");
      uploadParams();
    }
  }

  void uploadParams() {
    for (auto& lp : lora_) {
      ggml_backend_tensor_set(lp.a, lp.hostA.data(), 0, lp.hostA.size() * sizeof(float));
      ggml_backend_tensor_set(lp.b, lp.hostB.data(), 0, lp.hostB.size() * sizeof(float));
    }
  }

  // Transposed copies W^T (ne [n_out, n_in]) of every frozen matrix the gradient passes through,
  // so that the input gradient is mul_mat(W^T, g) (a fast, quantized-friendly matmul) instead of
  // out_prod(W, g^T) (which dequantizes W for every token on CPU and is F32-only on CUDA).
  // Type: F32/F16 kept as is; quantized types become Q8_0 (F16 when rows are not a multiple of 32).
  void buildTransposed() {
    std::vector<ggml_tensor*> ws;
    for (auto& L : layers_)
      for (int k = 0; k < P_COUNT; k++) ws.push_back(L.w[k]);
    ws.push_back(output_);
    ggml_init_params ip = {ggml_tensor_overhead() * (ws.size() + 1), nullptr, true};
    tctx_ = ggml_init(ip);
    std::vector<std::pair<ggml_tensor*, ggml_tensor*>> pairs;
    for (ggml_tensor* w : ws) {
      if (transposed_.count(w)) continue;
      ggml_type tt = w->type;
      if (tt != GGML_TYPE_F32 && tt != GGML_TYPE_F16) tt = (w->ne[1] % 32 == 0) ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
      ggml_tensor* t = ggml_new_tensor_2d(tctx_, tt, w->ne[1], w->ne[0]);
      ggml_set_name(t, (std::string(ggml_get_name(w)) + ".T").c_str());
      transposed_[w] = t;
      pairs.push_back({w, t});
    }
    tbuf_ = ggml_backend_alloc_ctx_tensors(tctx_, backend_);
    if (!tbuf_) fail("out of memory allocating transposed weights");
    ggml_backend_buffer_set_usage(tbuf_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    // independent per tensor: spread over the configured threads (this is most of the load time)
    std::atomic<size_t> next{0};
    std::string error;
    std::mutex errMu;
    auto work = [&]() {
      for (size_t i; (i = next.fetch_add(1)) < pairs.size();) {
        try {
          transposeInto(pairs[i].first, pairs[i].second);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(errMu);
          error = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < std::max(1, threads_); i++) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
    if (!error.empty()) fail(error);
  }

  void transposeInto(ggml_tensor* w, ggml_tensor* t) {
    const int64_t nIn = w->ne[0], nOut = w->ne[1];
    const size_t wRow = ggml_row_size(w->type, nIn);
    std::vector<uint8_t> wData(ggml_nbytes(w));
    ggml_backend_tensor_get(w, wData.data(), 0, wData.size());
    const auto* traits = ggml_get_type_traits(w->type);
    // columns of W are gathered in blocks so the float staging buffer stays around 64 MiB
    int64_t block = std::max<int64_t>(32, std::min<int64_t>(nIn, (16 << 20) / std::max<int64_t>(1, nOut)));
    std::vector<float> rowF(nIn), colBlock((size_t)block * nOut);
    const size_t tRow = ggml_row_size(t->type, nOut);
    std::vector<uint8_t> out(tRow * block);
    for (int64_t j0 = 0; j0 < nIn; j0 += block) {
      int64_t nb = std::min(block, nIn - j0);
      for (int64_t r = 0; r < nOut; r++) {
        const uint8_t* src = wData.data() + r * wRow;
        if (w->type == GGML_TYPE_F32) std::memcpy(rowF.data(), src, nIn * sizeof(float));
        else traits->to_float(src, rowF.data(), nIn);
        for (int64_t j = 0; j < nb; j++) colBlock[(size_t)j * nOut + r] = rowF[j0 + j];
      }
      if (t->type == GGML_TYPE_F32) std::memcpy(out.data(), colBlock.data(), (size_t)nb * nOut * sizeof(float));
      else if (t->type == GGML_TYPE_F16) ggml_fp32_to_fp16_row(colBlock.data(), (ggml_fp16_t*)out.data(), nb * nOut);
      else ggml_quantize_chunk(t->type, colBlock.data(), out.data(), 0, nb, nOut, nullptr);
      ggml_backend_tensor_set(t, out.data(), (size_t)j0 * tRow, (size_t)nb * tRow);
    }
  }

  // ---- graph

  ggml_tensor* matmul(ggml_context* ctx, int il, int proj, ggml_tensor* x, bool loraOn) {
    ggml_tensor* y = ggml_mul_mat(ctx, layers_[il].w[proj], x);
    if (loraOn && target_[proj]) {
      LoraPair& lp = lora_[loraIndex_.at({il, proj})];
      ggml_tensor* ab = ggml_mul_mat(ctx, lp.b, ggml_mul_mat(ctx, lp.a, x));
      // llama.cpp: scale = adapter_scale * alpha / rank (alpha 0 means no scaling)
      ab = ggml_scale(ctx, ab, alpha_ != 0.f ? alpha_ / (float)rank_ : 1.f);
      y = ggml_add(ctx, y, ab);
    }
    if (layers_[il].bias[proj]) y = ggml_add(ctx, y, layers_[il].bias[proj]);
    return y;
  }

  // Token embeddings (gemma3 scales them by sqrt(n_embd)).
  ggml_tensor* embed(ggml_context* ctx, ggml_tensor* tokens) {
    ggml_tensor* x = ggml_get_rows(ctx, tokEmbd_, tokens);
    return hp_.embdScale == 1.f ? x : ggml_scale(ctx, x, hp_.embdScale);
  }

  // GELU, tanh approximation (what ggml_gelu computes), from ops ggml can differentiate (it has no
  // backward for gelu, geglu, tanh or sigmoid): 0.5 x (1 + tanh(u)) = x sigmoid(2u), with
  // sigmoid(z) = exp(-softplus(-z)), which neither overflows nor gives 0 * inf in the backward.
  static ggml_tensor* geluTanh(ggml_context* ctx, ggml_tensor* x) {
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    ggml_tensor* inner = ggml_mul(ctx, x, ggml_scale_bias(ctx, ggml_sqr(ctx, x), 0.044715f, 1.0f));  // x + 0.044715 x^3
    ggml_tensor* sp = ggml_softplus(ctx, ggml_scale(ctx, inner, -2.0f * c));                        // softplus(-2u)
    return ggml_mul(ctx, x, ggml_exp(ctx, ggml_scale(ctx, sp, -1.0f)));
  }

  // One computation's tensors and graph (no_alloc: the graph allocator places the tensors).
  struct Graph {
    ggml_context* ctx = nullptr;
    ggml_cgraph* gf = nullptr;
    size_t nodes;
    explicit Graph(size_t n) : nodes(n) {
      ggml_init_params ip = {ggml_tensor_overhead() * n * 3 + ggml_graph_overhead_custom(n, true) * 3, nullptr, true};
      ctx = ggml_init(ip);
      if (!ctx) fail("out of memory creating a graph context");
    }
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;
    ~Graph() {
      if (ctx) ggml_free(ctx);
    }
  };

  size_t wholeGraphSize() const { return (size_t)std::max<int64_t>(8192, hp_.nLayer * 600 + 2048); }
  static constexpr size_t kLayerGraphSize = 4096;
  static constexpr size_t kHeadGraphSize = 512;

  static ggml_tensor* input(ggml_context* ctx, ggml_type type, int64_t n) {
    ggml_tensor* t = ggml_new_tensor_1d(ctx, type, n);
    ggml_set_input(t);
    return t;
  }

  // Per-micro-batch inputs every layer reads: positions and the causal mask of one sequence.
  struct SeqInputs {
    ggml_tensor *pos = nullptr, *mask = nullptr;
    ggml_tensor* maskSwa = nullptr;  // local layers' mask: causal and within the last nSwa positions
    int64_t T = 0, S = 1, Tm = 0, nSwa = 0;
  };
  static SeqInputs seqInputs(ggml_context* ctx, int64_t T, int64_t S, int64_t nSwa = 0) {
    SeqInputs si;
    si.T = T, si.S = S, si.Tm = T / S, si.nSwa = nSwa;
    si.pos = input(ctx, GGML_TYPE_I32, T);
    si.mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, si.Tm, si.Tm);
    ggml_set_input(si.mask);
    if (nSwa > 0) {
      si.maskSwa = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, si.Tm, si.Tm);
      ggml_set_input(si.maskSwa);
    }
    return si;
  }
  static void setSeqInputs(const SeqInputs& si, const BatchInput& in) {
    ggml_backend_tensor_set(si.pos, in.pos.data(), 0, si.T * sizeof(int32_t));
    std::vector<float> mask((size_t)si.Tm * si.Tm, -INFINITY);
    for (int64_t i = 0; i < si.Tm; i++)                                   // query row
      for (int64_t j = 0; j <= i; j++) mask[(size_t)i * si.Tm + j] = 0.f;  // causal
    // a one-layer graph reads only its layer type's mask; the other is not allocated
    if (si.mask->buffer) ggml_backend_tensor_set(si.mask, mask.data(), 0, mask.size() * sizeof(float));
    if (!si.maskSwa || !si.maskSwa->buffer) return;
    // llama.cpp's LLAMA_SWA_TYPE_STANDARD hides key p0 from query p1 when p1 - p0 >= n_swa
    for (int64_t i = 0; i < si.Tm; i++)
      for (int64_t j = 0; j + si.nSwa <= i; j++) mask[(size_t)i * si.Tm + j] = -INFINITY;
    ggml_backend_tensor_set(si.maskSwa, mask.data(), 0, mask.size() * sizeof(float));
  }

  // One decoder layer over a micro-batch of S sequences padded to Tm rows each (row s*Tm + t).
  // Attention runs per sequence (batch folded into the head dimension), so its memory is S*Tm^2,
  // not (S*Tm)^2; padding rows sit after each sequence's tokens, so the causal mask alone hides them.
  ggml_tensor* layerForward(ggml_context* ctx, int il, ggml_tensor* x, const SeqInputs& si, bool loraOn) {
    const Hparams& h = hp_;
    const int64_t T = si.T, S = si.S, Tm = si.Tm;
    const float kqScale = h.attnScale;
    const Layer& L = layers_[il];
    ggml_tensor* cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, h.eps), L.attnNorm);
    ggml_tensor* q = matmul(ctx, il, P_Q, cur, loraOn);
    ggml_tensor* k = matmul(ctx, il, P_K, cur, loraOn);
    ggml_tensor* v = matmul(ctx, il, P_V, cur, loraOn);
    q = ggml_reshape_3d(ctx, q, h.headDim, h.nHead, T);
    k = ggml_reshape_3d(ctx, k, h.headDim, h.nHeadKv, T);
    v = ggml_reshape_3d(ctx, v, h.headDim, h.nHeadKv, T);
    if (L.qNorm) q = ggml_mul(ctx, ggml_rms_norm(ctx, q, h.eps), L.qNorm);
    if (L.kNorm) k = ggml_mul(ctx, ggml_rms_norm(ctx, k, h.eps), L.kNorm);
    q = ggml_rope_ext(ctx, q, si.pos, L.ropeFreqs, (int)h.nRot, h.ropeMode, (int)h.nCtxOrig, L.ropeBase,
                      L.ropeFreqScale, 0.0f, 1.0f, 32.0f, 1.0f);
    k = ggml_rope_ext(ctx, k, si.pos, L.ropeFreqs, (int)h.nRot, h.ropeMode, (int)h.nCtxOrig, L.ropeBase,
                      L.ropeFreqScale, 0.0f, 1.0f, 32.0f, 1.0f);
    // Explicit attention (flash attention has no backward). GQA by mul_mat broadcasting over dim 2,
    // which holds head + n_head * seq: q head i of a sequence reads kv head i / (n_head / n_head_kv)
    // of the same sequence, as in llama.cpp. (Sequences go into dim 2, not dim 3, because ggml's
    // mul_mat backward supports broadcasting only without a 4th dimension.)
    ggml_tensor* q4 = ggml_reshape_4d(ctx, q, h.headDim, h.nHead, Tm, S);
    ggml_tensor* k4 = ggml_reshape_4d(ctx, k, h.headDim, h.nHeadKv, Tm, S);
    ggml_tensor* v4 = ggml_reshape_4d(ctx, v, h.headDim, h.nHeadKv, Tm, S);
    ggml_tensor* Q = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, q4, 0, 2, 1, 3)), h.headDim, Tm,
                                     h.nHead * S);  // [hd, Tm, n_head*S]
    ggml_tensor* K = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, k4, 0, 2, 1, 3)), h.headDim, Tm,
                                     h.nHeadKv * S);  // [hd, Tm, n_kv*S]
    ggml_tensor* V = ggml_reshape_3d(ctx, ggml_cont(ctx, ggml_permute(ctx, v4, 1, 2, 0, 3)), Tm, h.headDim,
                                     h.nHeadKv * S);  // [Tm, hd, n_kv*S]
    ggml_tensor* kq = ggml_mul_mat(ctx, K, Q);        // [Tm, Tm, n_head*S]
    kq = ggml_soft_max_ext(ctx, kq, L.swa ? si.maskSwa : si.mask, kqScale, 0.0f);
    ggml_tensor* kqv = ggml_mul_mat(ctx, V, kq);  // [hd, Tm, n_head*S]
    kqv = ggml_reshape_4d(ctx, kqv, h.headDim, Tm, h.nHead, S);
    cur = ggml_cont_2d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), h.headDim * h.nHead, T);
    cur = matmul(ctx, il, P_O, cur, loraOn);
    if (L.postAttnNorm) cur = ggml_mul(ctx, ggml_rms_norm(ctx, cur, h.eps), L.postAttnNorm);
    x = ggml_add(ctx, cur, x);
    cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, h.eps), L.ffnNorm);
    ggml_tensor* gate = matmul(ctx, il, P_GATE, cur, loraOn);
    ggml_tensor* up = matmul(ctx, il, P_UP, cur, loraOn);
    cur = h.geluFfn ? ggml_mul(ctx, geluTanh(ctx, gate), up) : ggml_swiglu_split(ctx, gate, up);
    cur = matmul(ctx, il, P_DOWN, cur, loraOn);
    if (L.postFfnNorm) cur = ggml_mul(ctx, ggml_rms_norm(ctx, cur, h.eps), L.postFfnNorm);
    return ggml_add(ctx, cur, x);
  }

  // The output head over C selected positions and the GRPO loss of their target tokens.
  struct Head {
    ggml_tensor* flat = nullptr;  // [C] index of each target in the flattened [n_vocab * C] probabilities
    ggml_tensor *old = nullptr, *ref = nullptr, *negAdvW = nullptr, *betaW = nullptr, *clipC = nullptr, *sgn = nullptr;
    ggml_tensor* logp = nullptr;
    ggml_tensor* loss = nullptr;
    int64_t C = 0;
  };

  // logp = log(softmax(logits / temperature)[target]) for the C positions of xSel ([n_embd, C]).
  void headForward(ggml_context* ctx, ggml_tensor* xSel, int64_t C, bool withLoss, bool withKl, float invTemp,
                   Head& hd) {
    const Hparams& h = hp_;
    hd.C = C;
    ggml_tensor* x = ggml_mul(ctx, ggml_rms_norm(ctx, xSel, h.eps), outNorm_);
    ggml_tensor* logits = ggml_mul_mat(ctx, output_, x);  // [n_vocab, C]
    // the policy's distribution is the one rollouts were sampled from: logits / temperature (as
    // TRL's GRPOTrainer); soft_max_ext's scale is differentiated by ggml
    ggml_tensor* probs = ggml_soft_max_ext(ctx, logits, nullptr, invTemp, 0.0f);
    hd.flat = input(ctx, GGML_TYPE_I32, C);
    // pick probs[target] per row: rows of length 1 over the flattened [n_vocab * C] probabilities
    ggml_tensor* picked = ggml_get_rows(ctx, ggml_reshape_2d(ctx, probs, 1, h.nVocab * C), hd.flat);
    hd.logp = ggml_log(ctx, ggml_reshape_1d(ctx, picked, C));
    ggml_set_output(hd.logp);
    if (!withLoss) return;
    hd.old = input(ctx, GGML_TYPE_F32, C);
    hd.negAdvW = input(ctx, GGML_TYPE_F32, C);
    hd.clipC = input(ctx, GGML_TYPE_F32, C);
    hd.sgn = input(ctx, GGML_TYPE_F32, C);
    // PPO-clip: the token is "active" (gradient flows through the ratio) unless the ratio is past
    // the clip bound on the side the advantage pushes to; ggml_step has no gradient, so the mask is
    // a constant for autograd. Loss value = -A * (m r + (1 - m) c) exactly equals -min(rA, clip(r)A).
    ggml_tensor* r = ggml_exp(ctx, ggml_sub(ctx, hd.logp, hd.old));
    ggml_tensor* m = ggml_step(ctx, ggml_mul(ctx, hd.sgn, ggml_sub(ctx, hd.clipC, r)));
    ggml_tensor* mc = ggml_mul(ctx, m, hd.clipC);
    ggml_tensor* surr = ggml_add(ctx, ggml_mul(ctx, m, r), ggml_sub(ctx, hd.clipC, mc));
    ggml_tensor* perTok = ggml_mul(ctx, hd.negAdvW, surr);
    if (withKl) {
      hd.ref = input(ctx, GGML_TYPE_F32, C);
      hd.betaW = input(ctx, GGML_TYPE_F32, C);
      // k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1
      ggml_tensor* d = ggml_sub(ctx, hd.ref, hd.logp);
      ggml_tensor* kl = ggml_scale_bias(ctx, ggml_sub(ctx, ggml_exp(ctx, d), d), 1.0f, -1.0f);
      perTok = ggml_add(ctx, perTok, ggml_mul(ctx, hd.betaW, kl));
    }
    hd.loss = ggml_sum(ctx, perTok);
    ggml_set_loss(hd.loss);
    ggml_set_output(hd.loss);
  }

  // Head inputs for targets [c0, c0 + C) of the micro-batch.
  void setHeadInputs(const Head& hd, const BatchInput& in, int64_t c0) {
    const int64_t C = hd.C;
    std::vector<int32_t> flat(C);
    for (int64_t j = 0; j < C; j++) flat[j] = (int32_t)(j * hp_.nVocab + in.targets[c0 + j]);
    ggml_backend_tensor_set(hd.flat, flat.data(), 0, C * sizeof(int32_t));
    auto setF = [&](ggml_tensor* t, const std::vector<float>& v) {
      if (t) ggml_backend_tensor_set(t, v.data() + c0, 0, C * sizeof(float));
    };
    setF(hd.old, in.old);
    setF(hd.negAdvW, in.negAdvW);
    setF(hd.clipC, in.clipC);
    setF(hd.sgn, in.sgn);
    setF(hd.ref, in.ref);
    setF(hd.betaW, in.betaW);
  }

  // ggml's graph allocator may compute RMS_NORM_BACK in place over its incoming gradient (src0) and
  // SOFT_MAX_BACK in place over the forward softmax output (src1), but the CPU kernels of this ggml
  // write dx := x (resp. dx := dy) before reading those inputs again, which corrupts the gradient
  // (found by the finite-difference test). Flagging those inputs as outputs stops the allocator
  // from reusing their memory; they are small or alive until their backward node anyway.
  static void protectFromInplace(ggml_cgraph* gf) {
    auto keep = [](ggml_tensor* t) {
      if (!t) return;
      ggml_set_output(t);
      if (t->view_src) ggml_set_output(t->view_src);
    };
    for (int i = 0; i < ggml_graph_n_nodes(gf); i++) {
      ggml_tensor* n = ggml_graph_node(gf, i);
      if (n->op == GGML_OP_RMS_NORM_BACK) keep(n->src[0]);
      if (n->op == GGML_OP_SOFT_MAX_BACK) keep(n->src[1]);
    }
  }

  // The gradients a backward graph yields: LoRA pairs (lora_ index) and extra inputs flagged as params.
  struct Grads {
    ggml_tensor* lossGrad = nullptr;
    std::vector<std::pair<size_t, std::pair<ggml_tensor*, ggml_tensor*>>> lora;  // index -> (dA, dB)
    std::vector<ggml_tensor*> wrt;  // gradients of `wrt` inputs, same order
  };

  // Builds g.gf: forward to `loss` (+ `outputs`), then the gradients of the LoRA pairs `loraIdx` and
  // of the inputs `wrt` (flagged as params). With gradMode transpose, ggml's out_prod(W, g^T) through
  // frozen matrices becomes mul_mat(W^T, g) (see buildTransposed).
  void buildBackward(Graph& g, ggml_tensor* loss, const std::vector<ggml_tensor*>& outputs,
                     const std::vector<size_t>& loraIdx, const std::vector<ggml_tensor*>& wrt, Grads& out) {
    for (ggml_tensor* t : wrt) ggml_set_param(t);
    ggml_cgraph* gb = ggml_new_graph_custom(g.ctx, g.nodes, true);
    ggml_build_forward_expand(gb, loss);
    ggml_build_backward_expand(g.ctx, gb, nullptr);
    for (size_t i : loraIdx) {
      ggml_tensor* a = ggml_graph_get_grad(gb, lora_[i].a);
      ggml_tensor* b = ggml_graph_get_grad(gb, lora_[i].b);
      if (a || b) out.lora.push_back({i, {a, b}});
    }
    for (ggml_tensor* t : wrt) out.wrt.push_back(ggml_graph_get_grad(gb, t));
    out.lossGrad = ggml_graph_get_grad_acc(gb, loss);
    if (!out.lossGrad) fail("internal: loss has no gradient accumulator");
    ggml_set_input(out.lossGrad);
    if (gradTranspose_) {
      for (int i = 0; i < ggml_graph_n_nodes(gb); i++) {
        ggml_tensor* n = ggml_graph_node(gb, i);
        if (n->op != GGML_OP_OUT_PROD || !n->src[1] || n->src[1]->op != GGML_OP_TRANSPOSE) continue;
        auto it = transposed_.find(n->src[0]);
        if (it == transposed_.end()) continue;
        n->op = GGML_OP_MUL_MAT;
        n->src[0] = it->second;
        n->src[1] = n->src[1]->src[0];
        std::memset(n->op_params, 0, sizeof(n->op_params));
      }
    }
    // A fresh graph over the (rewritten) nodes: drops the now-unused transpose views and picks up
    // the W^T leaves.
    g.gf = ggml_new_graph_custom(g.ctx, g.nodes, false);
    ggml_build_forward_expand(g.gf, loss);
    for (ggml_tensor* t : outputs) ggml_build_forward_expand(g.gf, t);
    auto expand = [&](ggml_tensor* t) {
      if (t) ggml_set_output(t), ggml_build_forward_expand(g.gf, t);
    };
    for (auto& p : out.lora) expand(p.second.first), expand(p.second.second);
    for (ggml_tensor* t : out.wrt) expand(t);
    protectFromInplace(g.gf);
  }

  void forwardGraph(Graph& g, const std::vector<ggml_tensor*>& outputs) {
    g.gf = ggml_new_graph_custom(g.ctx, g.nodes, false);
    for (ggml_tensor* t : outputs) ggml_build_forward_expand(g.gf, t);
  }

  ggml_backend_buffer_type_t buft() const { return ggml_backend_get_default_buffer_type(backend_); }

  // Bytes the graph allocator needs for g (inputs and intermediates; weights are already placed).
  size_t measure(Graph& g) {
    ggml_gallocr_t ga = ggml_gallocr_new(buft());
    size_t bytes = 0;
    ggml_gallocr_reserve_n_size(ga, g.gf, nullptr, nullptr, &bytes);
    ggml_gallocr_free(ga);
    return bytes;
  }

  // One graph allocator for every graph: its buffer grows to the largest graph and is reused.
  void allocate(Graph& g, TimeAcc& t) {
    auto t0 = std::chrono::steady_clock::now();
    if (!galloc_) galloc_ = ggml_gallocr_new(buft());
    if (!ggml_gallocr_alloc_graph(galloc_, g.gf)) fail("out of memory allocating the compute graph");
    computeBytes_ = std::max(computeBytes_, ggml_gallocr_get_buffer_size(galloc_, 0));
    t.graphMs += msSince(t0);
  }

  void run(Graph& g, TimeAcc& t) {
    auto t0 = std::chrono::steady_clock::now();
    if (ggml_backend_graph_compute(backend_, g.gf) != GGML_STATUS_SUCCESS) fail("graph compute failed");
    t.computeMs += msSince(t0);
  }

  static void setOne(ggml_tensor* t) {
    const float one = 1.0f;
    ggml_backend_tensor_set(t, &one, 0, sizeof(float));
  }

  static void getF(ggml_tensor* t, float* dst, size_t n) { ggml_backend_tensor_get(t, dst, 0, n * sizeof(float)); }

  void accumulateLora(const Grads& gr) {
    std::vector<float> tmp;
    auto acc = [&](ggml_tensor* gt, std::vector<float>& dst) {
      if (!gt) return;
      tmp.resize(dst.size());
      getF(gt, tmp.data(), tmp.size());
      for (size_t j = 0; j < dst.size(); j++) dst[j] += tmp[j];
    };
    for (auto& p : gr.lora) {
      acc(p.second.first, lora_[p.first].gA);
      acc(p.second.second, lora_[p.first].gB);
    }
  }

  std::vector<size_t> layerLora(int il) const {
    std::vector<size_t> idx;
    for (int k = 0; k < P_COUNT; k++) {
      auto it = loraIndex_.find({il, k});
      if (it != loraIndex_.end()) idx.push_back(it->second);
    }
    return idx;
  }

  // ---- the whole model as one graph (kept for the layer-by-layer equivalence test and as an option:
  // it keeps every layer's activations and the full [n_vocab x N] head alive for the backward pass)

  struct WholeG {
    Graph g;
    ggml_tensor *tokens = nullptr, *outRows = nullptr;
    SeqInputs si;
    Head hd;
    Grads gr;
    explicit WholeG(size_t n) : g(n) {}
  };

  void buildWhole(WholeG& w, int64_t T, int64_t S, int64_t N, bool loraOn, bool withLoss, bool withKl, float invTemp) {
    ggml_context* ctx = w.g.ctx;
    w.tokens = input(ctx, GGML_TYPE_I32, T);
    w.si = seqInputs(ctx, T, S, hp_.nSwa);
    w.outRows = input(ctx, GGML_TYPE_I32, N);
    ggml_tensor* x = embed(ctx, w.tokens);
    for (int il = 0; il < hp_.nLayer; il++) x = layerForward(ctx, il, x, w.si, loraOn);
    x = ggml_get_rows(ctx, x, w.outRows);  // [n_embd, N]: positions that predict targets
    headForward(ctx, x, N, withLoss, withKl, invTemp, w.hd);
    if (!withLoss) return forwardGraph(w.g, {w.hd.logp});
    std::vector<size_t> all(lora_.size());
    for (size_t i = 0; i < all.size(); i++) all[i] = i;
    buildBackward(w.g, w.hd.loss, {w.hd.logp}, all, {}, w.gr);
  }

  void runWhole(const BatchInput& in, bool loraOn, bool withLoss, StepResult& res) {
    const int64_t T = (int64_t)in.tokens.size(), N = (int64_t)in.outRows.size();
    WholeG w(wholeGraphSize());
    buildWhole(w, T, in.nSeq, N, loraOn, withLoss, in.withKl, in.invTemp);
    allocate(w.g, res.t);
    ggml_backend_tensor_set(w.tokens, in.tokens.data(), 0, T * sizeof(int32_t));
    ggml_backend_tensor_set(w.outRows, in.outRows.data(), 0, N * sizeof(int32_t));
    setSeqInputs(w.si, in);
    setHeadInputs(w.hd, in, 0);
    if (withLoss) setOne(w.gr.lossGrad);
    run(w.g, res.t);
    res.logp.resize(N);
    getF(w.hd.logp, res.logp.data(), N);
    if (!withLoss) return;
    float loss = 0;
    getF(w.hd.loss, &loss, 1);
    res.loss = loss;
    accumulateLora(w.gr);
  }

  // ---- layer by layer: a no-grad forward keeps each layer's input (T x n_embd floats, host memory);
  // the head runs over chunks of target positions and yields dL/dx of the last layer's output; then
  // each layer, from the top, recomputes its forward from its saved input and back-propagates the
  // injected upstream gradient g (loss sum(out * g), whose gradient w.r.t. out is g) to its LoRA
  // pairs and to its input. Only one layer's (or one head chunk's) graph is alive at a time.

  struct EmbedG {
    Graph g{16};
    ggml_tensor *tokens = nullptr, *x = nullptr;
  };
  void buildEmbed(EmbedG& e, int64_t T) {
    e.tokens = input(e.g.ctx, GGML_TYPE_I32, T);
    e.x = embed(e.g.ctx, e.tokens);
    ggml_set_output(e.x);
    forwardGraph(e.g, {e.x});
  }

  struct LayerG {
    Graph g;
    ggml_tensor *xin = nullptr, *out = nullptr, *gout = nullptr, *loss = nullptr;
    SeqInputs si;
    Grads gr;
    explicit LayerG(size_t n) : g(n) {}
  };
  // backward: LoRA gradients of layer il, and (inputGrad) the gradient w.r.t. its input, which the
  // bottom layer does not need (its input is the embedding)
  void buildLayer(LayerG& l, int il, int64_t T, int64_t S, bool loraOn, bool backward, bool inputGrad = true) {
    ggml_context* ctx = l.g.ctx;
    l.xin = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, hp_.nEmbd, T);
    ggml_set_input(l.xin);
    l.si = seqInputs(ctx, T, S, hp_.nSwa);
    l.out = layerForward(ctx, il, l.xin, l.si, loraOn);
    if (!backward) {
      ggml_set_output(l.out);
      return forwardGraph(l.g, {l.out});
    }
    l.gout = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, hp_.nEmbd, T);
    ggml_set_input(l.gout);
    l.loss = ggml_sum(ctx, ggml_mul(ctx, l.out, l.gout));
    ggml_set_loss(l.loss);
    std::vector<ggml_tensor*> wrt;
    if (inputGrad) wrt.push_back(l.xin);
    buildBackward(l.g, l.loss, {}, layerLora(il), wrt, l.gr);
  }

  struct HeadG {
    Graph g{kHeadGraphSize};
    ggml_tensor* xsel = nullptr;
    Head hd;
    Grads gr;
  };
  void buildHead(HeadG& h, int64_t C, bool withLoss, bool withKl, float invTemp) {
    h.xsel = ggml_new_tensor_2d(h.g.ctx, GGML_TYPE_F32, hp_.nEmbd, C);
    ggml_set_input(h.xsel);
    headForward(h.g.ctx, h.xsel, C, withLoss, withKl, invTemp, h.hd);
    if (!withLoss) return forwardGraph(h.g, {h.hd.logp});
    buildBackward(h.g, h.hd.loss, {h.hd.logp}, {}, {h.xsel}, h.gr);
  }

  int64_t headChunk(const BatchInput& in) const {
    const int64_t N = (int64_t)in.outRows.size();
    return in.headChunk > 0 ? std::min<int64_t>(in.headChunk, N) : N;
  }

  void runLayered(const BatchInput& in, bool loraOn, bool withLoss, StepResult& res) {
    const int64_t T = (int64_t)in.tokens.size(), N = (int64_t)in.outRows.size(), d = hp_.nEmbd;
    const int nL = (int)hp_.nLayer;
    // xs[l] = input of layer l; without a backward pass only the current one is needed
    std::vector<std::vector<float>> xs(withLoss ? nL + 1 : 2);
    auto slot = [&](int l) -> std::vector<float>& { return xs[withLoss ? l : l % 2]; };
    {
      EmbedG e;
      buildEmbed(e, T);
      allocate(e.g, res.t);
      ggml_backend_tensor_set(e.tokens, in.tokens.data(), 0, T * sizeof(int32_t));
      run(e.g, res.t);
      slot(0).resize((size_t)T * d);
      getF(e.x, slot(0).data(), slot(0).size());
    }
    for (int il = 0; il < nL; il++) {
      LayerG l(kLayerGraphSize);
      buildLayer(l, il, T, in.nSeq, loraOn, false);
      allocate(l.g, res.t);
      ggml_backend_tensor_set(l.xin, slot(il).data(), 0, slot(il).size() * sizeof(float));
      setSeqInputs(l.si, in);
      run(l.g, res.t);
      slot(il + 1).resize((size_t)T * d);
      getF(l.out, slot(il + 1).data(), slot(il + 1).size());
    }
    const std::vector<float>& xTop = slot(nL);
    std::vector<float> g;  // dL/d(output of the layer being differentiated), [n_embd, T]
    if (withLoss) g.assign((size_t)T * d, 0.f);
    res.logp.resize(N);
    double loss = 0;
    const int64_t chunk = headChunk(in);
    std::vector<float> rows, grows;
    for (int64_t c0 = 0; c0 < N; c0 += chunk) {
      const int64_t C = std::min(chunk, N - c0);
      HeadG h;
      buildHead(h, C, withLoss, in.withKl, in.invTemp);
      allocate(h.g, res.t);
      rows.resize((size_t)C * d);
      for (int64_t j = 0; j < C; j++)
        std::memcpy(rows.data() + j * d, xTop.data() + (size_t)in.outRows[c0 + j] * d, d * sizeof(float));
      ggml_backend_tensor_set(h.xsel, rows.data(), 0, rows.size() * sizeof(float));
      setHeadInputs(h.hd, in, c0);
      if (withLoss) setOne(h.gr.lossGrad);
      run(h.g, res.t);
      getF(h.hd.logp, res.logp.data() + c0, C);
      if (!withLoss) continue;
      float l = 0;
      getF(h.hd.loss, &l, 1);
      loss += l;
      grows.resize((size_t)C * d);
      getF(h.gr.wrt[0], grows.data(), grows.size());
      for (int64_t j = 0; j < C; j++) {
        float* dst = g.data() + (size_t)in.outRows[c0 + j] * d;
        const float* src = grows.data() + j * d;
        for (int64_t k = 0; k < d; k++) dst[k] += src[k];
      }
    }
    if (!withLoss) return;
    res.loss = loss;
    std::vector<float>().swap(xs[nL]);
    for (int il = nL - 1; il >= 0; il--) {
      LayerG l(kLayerGraphSize * 2);
      buildLayer(l, il, T, in.nSeq, true, true, il > 0);
      allocate(l.g, res.t);
      ggml_backend_tensor_set(l.xin, xs[il].data(), 0, xs[il].size() * sizeof(float));
      ggml_backend_tensor_set(l.gout, g.data(), 0, g.size() * sizeof(float));
      setSeqInputs(l.si, in);
      setOne(l.gr.lossGrad);
      run(l.g, res.t);
      accumulateLora(l.gr);
      if (il > 0) getF(l.gr.wrt[0], g.data(), g.size());
      std::vector<float>().swap(xs[il]);
    }
  }

  void runForward(const BatchInput& in, bool loraOn, StepResult& res) {
    auto t0 = std::chrono::steady_clock::now();
    if (in.whole) runWhole(in, loraOn, false, res);
    else runLayered(in, loraOn, false, res);
    res.ms = msSince(t0);
  }

  void runAccumulate(const BatchInput& in, StepResult& res) {
    auto t0 = std::chrono::steady_clock::now();
    if (lora_.empty()) fail("no LoRA parameters to train");
    if (in.whole) runWhole(in, true, true, res);
    else runLayered(in, true, true, res);
    res.ms = msSince(t0);
  }

  // Compute-buffer bytes of each graph a micro-batch of T rows (S sequences) with N targets builds,
  // measured by the graph allocator without allocating: what the memory plan adds to the weights.
  struct PlanSizes {
    size_t embed = 0, layerForward = 0, layerBackward = 0, headForward = 0, headBackward = 0, whole = 0;
  };
  PlanSizes planSizes(int64_t T, int64_t S, int64_t N, int64_t chunk, bool withKl, bool whole) {
    PlanSizes p;
    if (whole) {
      WholeG w(wholeGraphSize());
      buildWhole(w, T, S, N, true, !lora_.empty(), withKl, 1.f);
      p.whole = measure(w.g);
      return p;
    }
    const int64_t C = chunk > 0 ? std::min(chunk, N) : N;
    {
      EmbedG e;
      buildEmbed(e, T);
      p.embed = measure(e.g);
    }
    {
      LayerG l(kLayerGraphSize);
      buildLayer(l, 0, T, S, true, false);
      p.layerForward = measure(l.g);
    }
    {
      HeadG h;
      buildHead(h, C, false, withKl, 1.f);
      p.headForward = measure(h.g);
    }
    if (lora_.empty()) return p;
    {
      LayerG l(kLayerGraphSize * 2);
      buildLayer(l, 0, T, S, true, true);
      p.layerBackward = measure(l.g);
    }
    {
      HeadG h;
      buildHead(h, C, true, withKl, 1.f);
      p.headBackward = measure(h.g);
    }
    return p;
  }

  // Peak host scratch of transposeInto: a full copy of the largest matrix plus its staging blocks.
  size_t transposeScratch() const {
    size_t worst = 0;
    auto one = [&](const ggml_tensor* w) {
      const int64_t nIn = w->ne[0], nOut = w->ne[1];
      int64_t block = std::max<int64_t>(32, std::min<int64_t>(nIn, (16 << 20) / std::max<int64_t>(1, nOut)));
      size_t b = ggml_nbytes(w) + (size_t)nIn * 4 + (size_t)block * nOut * 4 + ggml_row_size(GGML_TYPE_F32, nOut) * block;
      worst = std::max(worst, b);
    };
    for (auto& L : layers_)
      for (int k = 0; k < P_COUNT; k++) one(L.w[k]);
    one(output_);
    return worst;
  }

  // Bytes buildTransposed would allocate (the plan decides whether it fits before making it).
  size_t transposedBytes() const {
    size_t bytes = 0;
    std::vector<const ggml_tensor*> seen;
    auto add = [&](const ggml_tensor* w) {
      for (auto* s : seen)
        if (s == w) return;
      seen.push_back(w);
      ggml_type tt = w->type;
      if (tt != GGML_TYPE_F32 && tt != GGML_TYPE_F16) tt = (w->ne[1] % 32 == 0) ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
      bytes += ggml_row_size(tt, w->ne[1]) * w->ne[0];
    };
    for (auto& L : layers_)
      for (int k = 0; k < P_COUNT; k++) add(L.w[k]);
    add(output_);
    return bytes;
  }

  // ---- JS methods

  void acquire(Napi::Env env) {
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true))
      throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    if (!backend_) {
      busy_.store(false);
      throw Napi::Error::New(env, "trainer was disposed");
    }
  }

  static BatchInput parseBatch(const Napi::Object& o) {
    BatchInput in;
    in.tokens = i32Array(o.Get("tokens"), "tokens");
    in.pos = i32Array(o.Get("pos"), "pos");
    in.nSeq = o.Get("nSeq").As<Napi::Number>().Int64Value();
    if (in.nSeq < 1 || in.tokens.size() % in.nSeq != 0)
      throw Napi::Error::New(o.Env(), "nSeq must divide the number of tokens");
    in.outRows = i32Array(o.Get("outRows"), "outRows");
    in.targets = i32Array(o.Get("targets"), "targets");
    if (in.tokens.empty() || in.outRows.empty()) throw Napi::Error::New(o.Env(), "empty micro-batch");
    if (in.targets.size() != in.outRows.size()) throw Napi::Error::New(o.Env(), "targets and outRows differ in length");
    auto present = [&](const char* k) { return o.Has(k) && !o.Get(k).IsUndefined() && !o.Get(k).IsNull(); };
    if (present("temperature")) {
      double temp = o.Get("temperature").As<Napi::Number>().DoubleValue();
      if (!(temp > 0)) throw Napi::Error::New(o.Env(), "temperature must be positive");
      in.invTemp = (float)(1.0 / temp);
    }
    if (present("whole")) in.whole = o.Get("whole").As<Napi::Boolean>().Value();
    if (present("headChunk")) in.headChunk = o.Get("headChunk").As<Napi::Number>().Int64Value();
    if (present("old")) {
      in.old = f32Array(o.Get("old"), "old");
      in.negAdvW = f32Array(o.Get("negAdvW"), "negAdvW");
      in.clipC = f32Array(o.Get("clipC"), "clipC");
      in.sgn = f32Array(o.Get("sgn"), "sgn");
      if (present("ref")) {
        in.withKl = true;
        in.ref = f32Array(o.Get("ref"), "ref");
        in.betaW = f32Array(o.Get("betaW"), "betaW");
      }
    }
    return in;
  }

  Napi::Value Describe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("arch", hp_.arch);
    o.Set("nVocab", (double)hp_.nVocab);
    o.Set("nEmbd", (double)hp_.nEmbd);
    o.Set("nLayer", (double)hp_.nLayer);
    o.Set("nHead", (double)hp_.nHead);
    o.Set("nHeadKv", (double)hp_.nHeadKv);
    o.Set("headDim", (double)hp_.headDim);
    o.Set("nFf", (double)hp_.nFf);
    o.Set("ropeFreqBase", hp_.ropeBase);
    o.Set("ropeFreqScale", hp_.ropeFreqScale);
    o.Set("rmsEps", hp_.eps);
    o.Set("weightType", ggml_type_name(layers_.empty() ? tokEmbd_->type : layers_[0].w[P_Q]->type));
    o.Set("backend", ggml_backend_name(backend_));
    auto arr = Napi::Array::New(env, lora_.size());
    for (size_t i = 0; i < lora_.size(); i++) {
      auto t = Napi::Object::New(env);
      t.Set("base", lora_[i].base);
      t.Set("nIn", (double)lora_[i].a->ne[0]);
      t.Set("nOut", (double)lora_[i].b->ne[1]);
      arr.Set(i, t);
    }
    o.Set("lora", arr);
    return o;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    BatchInput in = parseBatch(info[0].As<Napi::Object>());
    bool loraOn = info[1].As<Napi::Boolean>().Value();
    acquire(env);
    auto res = std::make_shared<StepResult>();
    auto* w = new PromiseWorker(
        env, [this, in = std::move(in), loraOn, res]() { runForward(in, loraOn, *res); },
        [res](Napi::Env e) -> Napi::Value {
          auto o = Napi::Object::New(e);
          o.Set("logp", toF32(e, res->logp));
          o.Set("ms", res->ms);
          o.Set("graphMs", res->t.graphMs);
          o.Set("computeMs", res->t.computeMs);
          return o;
        },
        &busy_);
    auto p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value Accumulate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    BatchInput in = parseBatch(info[0].As<Napi::Object>());
    if (in.old.size() != in.outRows.size()) throw Napi::Error::New(env, "loss inputs missing or mis-sized");
    acquire(env);
    auto res = std::make_shared<StepResult>();
    auto* w = new PromiseWorker(
        env, [this, in = std::move(in), res]() { runAccumulate(in, *res); },
        [res](Napi::Env e) -> Napi::Value {
          auto o = Napi::Object::New(e);
          o.Set("loss", res->loss);
          o.Set("logp", toF32(e, res->logp));
          o.Set("ms", res->ms);
          o.Set("graphMs", res->t.graphMs);
          o.Set("computeMs", res->t.computeMs);
          return o;
        },
        &busy_);
    auto p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    if (busy_.load()) throw Napi::Error::New(info.Env(), "trainer is busy (one operation at a time)");
    for (auto& lp : lora_) {
      std::fill(lp.gA.begin(), lp.gA.end(), 0.f);
      std::fill(lp.gB.begin(), lp.gB.end(), 0.f);
    }
    return info.Env().Undefined();
  }

  // The accumulated gradients {a, b} (diagnostics and gradient checks).
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    auto o = Napi::Object::New(env);
    auto a = Napi::Array::New(env, lora_.size()), b = Napi::Array::New(env, lora_.size());
    for (size_t i = 0; i < lora_.size(); i++) {
      a.Set(i, toF32(env, lora_[i].gA));
      b.Set(i, toF32(env, lora_[i].gB));
    }
    o.Set("a", a);
    o.Set("b", b);
    return o;
  }

  // Global gradient norm, clipping and AdamW (decoupled weight decay, bias-corrected moments) on the
  // accumulated gradients. A non-finite gradient skips the update and leaves parameters and moments
  // untouched. Gradients are zeroed either way.
  Napi::Value ApplyAdamW(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    const double lr = o.Get("lr").As<Napi::Number>().DoubleValue();
    const double b1 = o.Get("beta1").As<Napi::Number>().DoubleValue();
    const double b2 = o.Get("beta2").As<Napi::Number>().DoubleValue();
    const double eps = o.Get("eps").As<Napi::Number>().DoubleValue();
    const double wd = o.Get("weightDecay").As<Napi::Number>().DoubleValue();
    const double maxNorm = o.Get("maxGradNorm").As<Napi::Number>().DoubleValue();
    const double t = o.Get("step").As<Napi::Number>().DoubleValue();  // 1-based step number
    const bool apply = o.Get("apply").As<Napi::Boolean>().Value();
    acquire(env);
    auto out = std::make_shared<std::pair<double, bool>>(0.0, false);
    auto* w = new PromiseWorker(
        env,
        [=, this]() {
          double sq = 0;
          for (auto& lp : lora_) {
            for (float g : lp.gA) sq += (double)g * g;
            for (float g : lp.gB) sq += (double)g * g;
          }
          double norm = std::sqrt(sq);
          out->first = norm;
          out->second = false;
          if (apply && std::isfinite(norm)) {
            const double clip = (maxNorm > 0 && norm > maxNorm) ? maxNorm / (norm + 1e-6) : 1.0;
            const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
            auto upd = [&](std::vector<float>& p, std::vector<float>& g, std::vector<float>& m, std::vector<float>& v) {
              for (size_t j = 0; j < p.size(); j++) {
                double gj = g[j] * clip;
                double mj = b1 * m[j] + (1 - b1) * gj;
                double vj = b2 * v[j] + (1 - b2) * gj * gj;
                m[j] = (float)mj;
                v[j] = (float)vj;
                double pj = p[j];
                pj -= lr * wd * pj;
                pj -= lr * (mj / bc1) / (std::sqrt(vj / bc2) + eps);
                p[j] = (float)pj;
              }
            };
            for (auto& lp : lora_) {
              upd(lp.hostA, lp.gA, lp.mA, lp.vA);
              upd(lp.hostB, lp.gB, lp.mB, lp.vB);
            }
            uploadParams();
            out->second = true;
          }
          for (auto& lp : lora_) {
            std::fill(lp.gA.begin(), lp.gA.end(), 0.f);
            std::fill(lp.gB.begin(), lp.gB.end(), 0.f);
          }
        },
        [out](Napi::Env e) -> Napi::Value {
          auto r = Napi::Object::New(e);
          r.Set("gradNorm", out->first);
          r.Set("applied", out->second);
          return r;
        },
        &busy_);
    auto p = w->Promise();
    w->Queue();
    return p;
  }

  // State as {a, b, mA, mB, vA, vB}: arrays of Float32Array, one per LoRA pair in describe() order.
  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    auto o = Napi::Object::New(env);
    const char* keys[6] = {"a", "b", "mA", "mB", "vA", "vB"};
    for (int k = 0; k < 6; k++) {
      auto arr = Napi::Array::New(env, lora_.size());
      for (size_t i = 0; i < lora_.size(); i++) {
        LoraPair& lp = lora_[i];
        std::vector<float>* v[6] = {&lp.hostA, &lp.hostB, &lp.mA, &lp.mB, &lp.vA, &lp.vB};
        arr.Set(i, toF32(env, *v[k]));
      }
      o.Set(keys[k], arr);
    }
    return o;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    auto o = info[0].As<Napi::Object>();
    const char* keys[6] = {"a", "b", "mA", "mB", "vA", "vB"};
    for (int k = 0; k < 6; k++) {
      if (!o.Has(keys[k])) continue;
      auto arr = o.Get(keys[k]).As<Napi::Array>();
      if (arr.Length() != lora_.size()) throw Napi::Error::New(env, std::string("state.") + keys[k] + " has the wrong length");
      for (size_t i = 0; i < lora_.size(); i++) {
        LoraPair& lp = lora_[i];
        std::vector<float>* v[6] = {&lp.hostA, &lp.hostB, &lp.mA, &lp.mB, &lp.vA, &lp.vB};
        std::vector<float> d = f32Array(arr.Get(i), keys[k]);
        if (d.size() != v[k]->size())
          throw Napi::Error::New(env, std::string("state.") + keys[k] + "[" + std::to_string(i) + "] has the wrong size");
        *v[k] = std::move(d);
      }
    }
    uploadParams();
    return env.Undefined();
  }

  // llama.cpp LoRA adapter GGUF (src/llama-adapter.cpp): general.type=adapter, adapter.type=lora,
  // adapter.lora.alpha, tensors <base>.lora_a [n_in, r] and <base>.lora_b [r, n_out], F32.
  Napi::Value ExportAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    size_t bytes = 0;
    for (auto& lp : lora_) bytes += (lp.hostA.size() + lp.hostB.size()) * sizeof(float) + 2 * 64;
    ggml_init_params ip = {ggml_tensor_overhead() * (2 * lora_.size() + 1) + bytes, nullptr, false};
    ggml_context* ctx = ggml_init(ip);
    gguf_context* g = gguf_init_empty();
    gguf_set_val_str(g, "general.type", "adapter");
    gguf_set_val_str(g, "general.architecture", hp_.arch.c_str());
    gguf_set_val_str(g, "adapter.type", "lora");
    gguf_set_val_f32(g, "adapter.lora.alpha", alpha_);
    for (auto& lp : lora_) {
      ggml_tensor* a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, lp.a->ne[0], lp.a->ne[1]);
      ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, lp.b->ne[0], lp.b->ne[1]);
      ggml_set_name(a, ggml_get_name(lp.a));
      ggml_set_name(b, ggml_get_name(lp.b));
      std::memcpy(a->data, lp.hostA.data(), ggml_nbytes(a));
      std::memcpy(b->data, lp.hostB.data(), ggml_nbytes(b));
      gguf_add_tensor(g, a);
      gguf_add_tensor(g, b);
    }
    // ggml logs two lines of its own on a failed write; the caller reports it once, naming the file
    ggml_log_callback prev = nullptr;
    void* prevData = nullptr;
    ggml_log_get(&prev, &prevData);
    std::string log;
    ggml_log_set(captureLog, &log);
    bool ok = gguf_write_to_file(g, path.c_str(), false);
    ggml_log_set(prev, prevData);
    gguf_free(g);
    ggml_free(ctx);
    if (!ok) throw Napi::Error::New(env, "cannot write adapter " + path);
    return env.Undefined();
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    threads_ = info[0].As<Napi::Number>().Int32Value();
    if (backend_ && isCpu_) {
      ggml_backend_dev_t dev = ggml_backend_get_device(backend_);
      auto fn = (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev),
                                                                                "ggml_backend_set_n_threads");
      if (fn) fn(backend_, threads_);
    }
    return info.Env().Undefined();
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("weights", (double)(wbuf_ ? ggml_backend_buffer_get_size(wbuf_) : 0));
    o.Set("transposed", (double)(tbuf_ ? ggml_backend_buffer_get_size(tbuf_) : 0));
    o.Set("lora", (double)(lbuf_ ? ggml_backend_buffer_get_size(lbuf_) : 0));
    o.Set("compute", (double)computeBytes_);
    o.Set("transposedNeeded", (double)transposedBytes());
    o.Set("transposeScratch", (double)transposeScratch());
    size_t devFree = 0, devTotal = 0;
    if (backend_) ggml_backend_dev_memory(ggml_backend_get_device(backend_), &devFree, &devTotal);
    o.Set("deviceFree", (double)devFree);
    o.Set("deviceTotal", (double)devTotal);
    o.Set("gradMode", gradTranspose_ ? "transpose" : "outprod");
    return o;
  }

  // Compute-buffer sizes of the graphs one micro-batch builds ({rows, nSeq, targets, headChunk,
  // withKl, whole}), measured by ggml's graph allocator without allocating anything.
  Napi::Value Plan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    if (!backend_) throw Napi::Error::New(env, "trainer was disposed");
    auto o = info[0].As<Napi::Object>();
    const int64_t T = o.Get("rows").As<Napi::Number>().Int64Value();
    const int64_t S = o.Get("nSeq").As<Napi::Number>().Int64Value();
    const int64_t N = o.Get("targets").As<Napi::Number>().Int64Value();
    const int64_t chunk = o.Get("headChunk").As<Napi::Number>().Int64Value();
    const bool withKl = o.Get("withKl").As<Napi::Boolean>().Value();
    const bool whole = o.Get("whole").As<Napi::Boolean>().Value();
    if (T < 1 || S < 1 || T % S != 0 || N < 1) throw Napi::Error::New(env, "plan: bad micro-batch shape");
    PlanSizes p;
    try {
      p = planSizes(T, S, N, chunk, withKl, whole);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    auto r = Napi::Object::New(env);
    r.Set("embed", (double)p.embed);
    r.Set("layerForward", (double)p.layerForward);
    r.Set("layerBackward", (double)p.layerBackward);
    r.Set("headForward", (double)p.headForward);
    r.Set("headBackward", (double)p.headBackward);
    r.Set("whole", (double)p.whole);
    return r;
  }

  // Makes the transposed weight copies (gradMode transpose) after the memory plan found room for them.
  Napi::Value EnableTranspose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw Napi::Error::New(env, "trainer is busy (one operation at a time)");
    if (gradTranspose_ && tbuf_) return env.Undefined();
    try {
      gradTranspose_ = true;
      buildTransposed();
    } catch (const std::exception& e) {
      gradTranspose_ = false;
      transposed_.clear();
      if (tbuf_) ggml_backend_buffer_free(tbuf_), tbuf_ = nullptr;
      if (tctx_) ggml_free(tctx_), tctx_ = nullptr;
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_.load()) throw Napi::Error::New(info.Env(), "trainer is busy (one operation at a time)");
    release();
    return info.Env().Undefined();
  }
};

Napi::Value GgmlInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("version", ggml_version());
  o.Set("commit", ggml_commit());
  o.Set("expected", CATRL_GGML_EXPECTED);
  return o;
}

// Test and benchmark utility: rewrites a GGUF with its 2-D weights converted to `type` (when the row
// length allows it; e.g. Q4_K, which the model generator does not write) and, with noise > 0, every
// 1-D F32 tensor (norm weights, biases) perturbed deterministically so those code paths are not
// trivially ones / zeros in random-weight test models.
Napi::Value ConvertModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string in = info[0].As<Napi::String>().Utf8Value();
  std::string out = info[1].As<Napi::String>().Utf8Value();
  std::string typeName = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  float noise = info[3].As<Napi::Number>().FloatValue();
  uint32_t seed = info[4].As<Napi::Number>().Uint32Value();
  ggml_type to = GGML_TYPE_COUNT;
  for (int t = 0; t < GGML_TYPE_COUNT && !typeName.empty(); t++) {
    const char* n = ggml_type_name((ggml_type)t);
    if (n && typeName == n) to = (ggml_type)t;
  }
  if (!typeName.empty() && (to == GGML_TYPE_COUNT || !ggml_get_type_traits(to)->from_float_ref))
    throw Napi::Error::New(env, "convertModel: unknown or unwritable type " + typeName);
  ggml_context* src = nullptr;
  gguf_init_params gp = {false, &src};
  gguf_context* g = gguf_init_from_file(in.c_str(), gp);
  if (!g) throw Napi::Error::New(env, "convertModel: cannot read " + in);
  gguf_context* o = gguf_init_empty();
  gguf_set_kv(o, g);
  size_t bytes = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
    ggml_tensor* t = ggml_get_tensor(src, gguf_get_tensor_name(g, i));
    bytes += ggml_nelements(t) * sizeof(float) + ggml_nbytes(t) + 256;
  }
  ggml_init_params ip = {ggml_tensor_overhead() * (gguf_get_n_tensors(g) + 1) + bytes, nullptr, false};
  ggml_context* dst = ggml_init(ip);
  uint32_t x = seed * 2654435761u + 1u;
  auto rnd = [&]() {  // xorshift32 in [-1, 1)
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    return (float)((double)x / 4294967296.0 * 2.0 - 1.0);
  };
  for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
    ggml_tensor* t = ggml_get_tensor(src, gguf_get_tensor_name(g, i));
    const int64_t n = ggml_nelements(t);
    std::string name = ggml_get_name(t);
    bool isMatrix = ggml_n_dims(t) == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    ggml_tensor* d;
    if (to != GGML_TYPE_COUNT && isMatrix && t->ne[0] % ggml_blck_size(to) == 0) {
      std::vector<float> f(n);
      if (t->type == GGML_TYPE_F32) std::memcpy(f.data(), t->data, n * sizeof(float));
      else ggml_get_type_traits(t->type)->to_float(t->data, f.data(), n);
      d = ggml_new_tensor(dst, to, GGML_MAX_DIMS, t->ne);
      ggml_quantize_chunk(to, f.data(), d->data, 0, t->ne[1], t->ne[0], nullptr);
    } else {
      d = ggml_dup_tensor(dst, t);
      std::memcpy(d->data, t->data, ggml_nbytes(t));
      if (noise > 0 && t->type == GGML_TYPE_F32 && ggml_n_dims(t) == 1)
        for (int64_t j = 0; j < n; j++) ((float*)d->data)[j] += noise * rnd();
    }
    ggml_set_name(d, name.c_str());
    gguf_add_tensor(o, d);
  }
  bool ok = gguf_write_to_file(o, out.c_str(), false);
  gguf_free(o);
  gguf_free(g);
  ggml_free(dst);
  ggml_free(src);
  if (!ok) throw Napi::Error::New(env, "convertModel: cannot write " + out);
  return env.Undefined();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("ggmlInfo", Napi::Function::New(env, GgmlInfo));
  exports.Set("convertModel", Napi::Function::New(env, ConvertModel));
  exports.Set("Trainer", Trainer::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(catrl_trainer, InitModule)
