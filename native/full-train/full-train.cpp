// full-train: full-parameter training of a small F32 llama GGUF with llama.cpp's own optimizer
// (llama_opt_init / llama_opt_epoch, AdamW), linked against the libllama that node-llama-cpp ships.
//
// A separate executable rather than part of the N-API addon: training blocks for many minutes, llama's
// backend state is process-global, and a child process can be killed and resumed from its checkpoint
// without touching the Node process. The TypeScript recipe (src/toy/train-toy.ts) writes the dataset and
// reads the JSON lines this prints on stdout.
//
// usage: full-train MODEL_IN OUT THREADS LR LR_MIN WARMUP TOTAL_STEPS STEP0 DATA1 [DATA2 ...]
//   DATA files: int32 little-endian windows of n_ctx+1 tokens (the model's context length + 1): the
//   inputs are tokens[0..n_ctx), the labels tokens[1..n_ctx]; every position is trained (llama_opt_epoch
//   has no loss mask). After each data file the weights are written into a copy of MODEL_IN at OUT
//   (same metadata, tensors patched in place) and a {"event":"checkpoint"} line is printed.
//   STEP0 is the optimizer step the run resumes at (the learning-rate schedule continues from it; the
//   AdamW moments start again from zero on resume).

#include "ggml-backend.h"
#include "ggml-opt.h"
#include "gguf.h"
#include "llama.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct schedule {
    float   lr;
    float   lr_min;
    int64_t warmup;
    int64_t total;
    int64_t step;  // optimizer steps taken so far (incremented each time ggml-opt asks for parameters)
};

// Linear warm-up, then cosine decay to lr_min at `total` steps (nanoGPT's schedule).
static ggml_opt_optimizer_params get_opt_pars(void * ud) {
    auto * s = (schedule *) ud;
    const int64_t t = s->step++;
    float lr = s->lr_min;
    if (t < s->warmup) {
        lr = s->lr * (float) (t + 1) / (float) s->warmup;
    } else if (t < s->total) {
        const float p = (float) (t - s->warmup) / (float) std::max<int64_t>(1, s->total - s->warmup);
        lr = s->lr_min + 0.5f * (s->lr - s->lr_min) * (1.0f + cosf(3.14159265f * p));
    }
    ggml_opt_optimizer_params p = ggml_opt_get_default_optimizer_params(nullptr);
    p.adamw.alpha = lr;
    p.adamw.beta1 = 0.9f;
    p.adamw.beta2 = 0.99f;
    p.adamw.wd    = 0.0f;
    return p;
}

static std::vector<const ggml_tensor *> g_params;  // the model's weight tensors, for writing them out
static bool collect_params(const ggml_tensor * t, void *) {
    g_params.push_back(t);
    return true;
}

static schedule g_sched;
static int64_t  g_last_report_us = 0;
static int64_t  g_tokens_per_step = 0;

static void on_batch(bool train, ggml_opt_context_t, ggml_opt_dataset_t, ggml_opt_result_t result,
                     int64_t ibatch, int64_t ibatch_max, int64_t t_start_us) {
    if (!train) return;
    const int64_t now = ggml_time_us();
    if (ibatch != ibatch_max && now - g_last_report_us < 2000000) return;  // a line every 2 s at most
    g_last_report_us = now;
    double loss = 0, loss_unc = 0, acc = 0, acc_unc = 0;
    ggml_opt_result_loss(result, &loss, &loss_unc);
    ggml_opt_result_accuracy(result, &acc, &acc_unc);
    const double secs = (now - t_start_us) / 1e6;
    printf("{\"event\":\"progress\",\"step\":%lld,\"batch\":%lld,\"batches\":%lld,\"loss\":%.5f,\"accuracy\":%.5f,"
           "\"tokens_per_s\":%.1f}\n",
           (long long) g_sched.step, (long long) ibatch, (long long) ibatch_max, loss, acc,
           secs > 0 ? ibatch * g_tokens_per_step / secs : 0.0);
    fflush(stdout);
}

static bool read_file(const char * path, std::vector<int32_t> & out) {
    FILE * f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    out.resize(n / sizeof(int32_t));
    const bool ok = fread(out.data(), 1, n, f) == (size_t) n;
    fclose(f);
    return ok;
}

// Copies MODEL_IN to OUT (via OUT.tmp and a rename, so a kill never leaves a half-written checkpoint)
// with every trained tensor's data written at its offset.
static bool write_weights(const char * model_in, const std::string & out) {
    gguf_init_params gp = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
    gguf_context * g = gguf_init_from_file(model_in, gp);
    if (!g) { fprintf(stderr, "full-train: gguf_init_from_file(%s) failed\n", model_in); return false; }
    std::vector<char> bytes;
    {
        FILE * f = fopen(model_in, "rb");
        if (!f) { gguf_free(g); return false; }
        fseek(f, 0, SEEK_END);
        bytes.resize(ftell(f));
        fseek(f, 0, SEEK_SET);
        const bool ok = fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
        fclose(f);
        if (!ok) { gguf_free(g); return false; }
    }
    const size_t data0 = gguf_get_data_offset(g);
    for (const ggml_tensor * t : g_params) {
        const int64_t id = gguf_find_tensor(g, t->name);
        if (id < 0) { fprintf(stderr, "full-train: tensor %s not in %s\n", t->name, model_in); gguf_free(g); return false; }
        const size_t off = data0 + gguf_get_tensor_offset(g, id);
        if (gguf_get_tensor_size(g, id) != ggml_nbytes(t)) {
            fprintf(stderr, "full-train: tensor %s size differs from %s\n", t->name, model_in);
            gguf_free(g);
            return false;
        }
        ggml_backend_tensor_get(t, bytes.data() + off, 0, ggml_nbytes(t));
    }
    gguf_free(g);
    const std::string tmp = out + ".tmp";
    FILE * f = fopen(tmp.c_str(), "wb");
    if (!f) { fprintf(stderr, "full-train: cannot write %s\n", tmp.c_str()); return false; }
    const bool ok = fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && fflush(f) == 0;
    fclose(f);
    return ok && rename(tmp.c_str(), out.c_str()) == 0;
}

int main(int argc, char ** argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: full-train MODEL_IN OUT THREADS LR LR_MIN WARMUP TOTAL_STEPS STEP0 DATA...\n");
        return 2;
    }
    const char * model_in = argv[1];
    const std::string out = argv[2];
    const int threads     = atoi(argv[3]);
    g_sched = { (float) atof(argv[4]), (float) atof(argv[5]), atoll(argv[6]), atoll(argv[7]), atoll(argv[8]) };

    // --- load the backends node-llama-cpp ships beside libllama, then the model (no mmap: it is trained)
    const char * bins = getenv("FULL_TRAIN_BACKENDS");
    if (bins) ggml_backend_load_all_from_path(bins); else ggml_backend_load_all();
    llama_log_set([](ggml_log_level level, const char * text, void *) {
        if (level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
    }, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.load_mode = LLAMA_LOAD_MODE_NONE;  // writable weights (as llama-finetune forces)
    mp.use_extra_bufts = false;           // no repacked weight layouts: they have no backward
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_in, mp);
    if (!model) { fprintf(stderr, "full-train: llama_model_load_from_file(%s) failed\n", model_in); return 1; }
    const uint32_t n_ctx = (uint32_t) llama_model_n_ctx_train(model);

    // --- one context whose batch is one whole window: one AdamW step per window
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;  // F32 KV: the backward pass runs through the cache
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // no backward for flash attention
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "full-train: llama_init_from_model failed\n"); return 1; }
    g_tokens_per_step = n_ctx;

    // llama_opt_epoch computes through ggml-opt without telling the CPU backend its thread count, so
    // the backend keeps ggml's default of 4 threads, which spin-wait on this 2-core machine (measured:
    // 33 tokens/s, most of it in ggml_barrier). One decode sets the context's count on the backend.
    {
        llama_token bos = llama_vocab_bos(llama_model_get_vocab(model));
        llama_batch one = llama_batch_get_one(&bos, 1);
        if (llama_decode(ctx, one) != 0) { fprintf(stderr, "full-train: warm-up llama_decode failed\n"); return 1; }
    }

    llama_opt_params op = {};
    op.n_ctx_train = 0;
    op.param_filter = collect_params;
    op.param_filter_ud = nullptr;
    op.get_opt_pars = get_opt_pars;
    op.get_opt_pars_ud = &g_sched;
    op.optimizer_type = GGML_OPT_OPTIMIZER_TYPE_ADAMW;
    llama_opt_init(ctx, model, op);

    // --- main loop: one epoch call per data file, a checkpoint after each
    for (int i = 9; i < argc; i++) {
        std::vector<int32_t> toks;
        if (!read_file(argv[i], toks) || toks.size() % (n_ctx + 1) != 0 || toks.empty()) {
            fprintf(stderr, "full-train: %s: not a whole number of %u-token windows\n", argv[i], n_ctx + 1);
            return 1;
        }
        const int64_t ndata = toks.size() / (n_ctx + 1);
        ggml_opt_dataset_t ds = ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, n_ctx, n_ctx, ndata, 1);
        auto * data   = (int32_t *) ggml_opt_dataset_data(ds)->data;
        auto * labels = (int32_t *) ggml_opt_dataset_labels(ds)->data;
        for (int64_t w = 0; w < ndata; w++) {
            const int32_t * src = toks.data() + w * (n_ctx + 1);
            memcpy(data + w * n_ctx, src, n_ctx * sizeof(int32_t));
            memcpy(labels + w * n_ctx, src + 1, n_ctx * sizeof(int32_t));
        }
        ggml_opt_result_t result = ggml_opt_result_init();
        llama_opt_epoch(ctx, ds, result, nullptr, ndata, on_batch, nullptr);
        double loss = 0, unc = 0;
        ggml_opt_result_loss(result, &loss, &unc);
        ggml_opt_result_free(result);
        ggml_opt_dataset_free(ds);
        if (!write_weights(model_in, out)) return 1;
        printf("{\"event\":\"checkpoint\",\"data\":\"%s\",\"step\":%lld,\"loss\":%.5f}\n", argv[i],
               (long long) g_sched.step, loss);
        fflush(stdout);
    }

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
