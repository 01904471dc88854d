// The op set: every numeric operation the GPT needs, declared once. Each backend (kernels/cpu:
// fp32 + OpenMP, the reference; kernels/cuda: bf16 mixed precision, or fp32 as "cuda-fp32") fills
// one Backend table; model/ calls through the table and never knows which backend runs.
//
// Conventions every backend keeps (the CPU backend is the reference for all of them):
// - Pointers are backend memory (host memory for cpu, device memory for cuda), obtained from
//   be->alloc. Sizes are in elements. Shapes are given in comments, row-major, last dim fastest:
//   B batch, T time, C channels, NH heads, hs = C/NH head size, OC output channels,
//   V real vocabulary, Vp vocabulary padded to a multiple of 64.
// - Two element types. fp32 for: the master parameters, every parameter GRADIENT (dwte, dwpe, dw,
//   db, dweight, dbias), the AdamW moments, the LayerNorm statistics (mean, rstd), the attention
//   state, per-token losses and the loss mask. The backend's COMPUTE type, act_bytes bytes an
//   element, for everything else: activations, their gradients, logits, the KV cache, and the
//   weights and biases the forward and backward ops read (a copy of the master parameters that
//   round_params refreshes). The CPU backend computes in fp32 (act_bytes 4: the copy IS the master);
//   the CUDA backend in bf16 (act_bytes 2; fp32 accumulation inside every op). Pointers stay
//   `float *` in the interface so that one model drives both: the model sizes and offsets
//   compute-type tensors with act_bytes (model/gpt.h act_at), never with pointer arithmetic.
// - PARAMETER gradients are ACCUMULATED (+=) by every backward op, and so is the residual stream's
//   gradient (layernorm_backward's dinp: both branches of a block add into it). The other
//   activation gradients each have exactly one producing op (matmul_backward's dinp,
//   matmul_backward_gelu's dpre, attention_backward's dqkv), which WRITES them (=): nothing needs
//   zeroing before it, and no GEMM reads its output back. The model zeroes the residual stream's
//   gradient once per backward and parameter gradients once per optimizer step, which is what
//   makes gradient accumulation over micro-steps free.
// - Results are deterministic: the same inputs and thread count give the same bits. A resumed run
//   is bit-identical only because of this (no atomics-order reductions, no racing adds).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Backend {
    const char *name;  // "cpu", "cuda", "cuda-fp32"

    // ---- memory ----
    void *(*alloc)(size_t bytes);                 // zero-filled; dies on failure
    void (*free)(void *p);
    void (*upload)(void *dst, const void *src, size_t bytes);    // host -> backend
    void (*download)(void *dst, const void *src, size_t bytes);  // backend -> host
    void (*zero)(void *p, size_t bytes);
    void (*set_threads)(int n);                   // 0 = library default

    // ---- the compute type ----
    size_t act_bytes;                             // 4: fp32, 2: bf16
    // n elements between host fp32 and backend compute-type memory (round to nearest even).
    void (*upload_act)(float *dst, const float *host, size_t n);
    void (*download_act)(float *host, const float *src, size_t n);
    // dst (n, compute type) = src (n, fp32 master parameters), both backend memory; index i is
    // element i of the whole parameter buffer. Narrower types round STOCHASTICALLY, with the
    // random bits a hash of (i, the fp32 bits): unbiased over steps like fresh random numbers, yet
    // a pure function of the master weights, so a resumed run, every ZeRO-1 rank and a reloaded
    // checkpoint get the same copy. A no-op when dst == src (the fp32 backends).
    void (*round_params)(float *dst, const float *src, size_t n);

    // ---- forward and backward ops ----
    // out (B,T,C) = wte[inp] (Vp,C) + wpe[t] (maxT,C)
    void (*encoder_forward)(float *out, const int32_t *inp, const float *wte, const float *wpe, int B, int T, int C);
    // dwte (Vp,C) += dout rows by token, dwpe (maxT,C) += by position. inp_host: the same ids in
    // host memory, or NULL. (The CUDA backend groups the positions by token on the host; reading
    // inp back from the device would wait for every kernel queued before it.)
    void (*encoder_backward)(float *dwte, float *dwpe, const float *dout, const int32_t *inp, const int32_t *inp_host,
                             int B, int T, int C);

    // out (N,C) = (inp - mean) * rstd * w + b over the last dim; mean, rstd (N,) kept for backward.
    // eps = 1e-5 as in GPT-2 / PyTorch.
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w,
                              const float *b, int N, int C);
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, const float *mean, const float *rstd, int N, int C);
    // The residual add fused with the LayerNorm that reads it: res (N,C) = a + b, then out, mean,
    // rstd = layernorm_forward(res); the same bits as residual_forward then layernorm_forward (res
    // is rounded to the compute type before the LayerNorm reads it), one pass over each row.
    void (*residual_layernorm_forward)(float *res, float *out, float *mean, float *rstd, const float *a,
                                       const float *b, const float *w, const float *bias, int N, int C);

    // out (N,OC) = inp (N,C) @ weight^T + bias; weight (OC,C) as in torch.nn.Linear; bias may be NULL.
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
    // dinp (N,C) = dout @ weight, written; dweight (OC,C) += dout^T inp; dbias (OC,) += column sums
    // of dout, or NULL.
    void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC);

    // Causal self-attention. qkv (B,T,3C) holds q | k | v, each (NH,hs) per position; out (B,T,C).
    // `state` is what backward needs besides qkv: attention_state_size(B,T,NH) floats. The CPU
    // backend keeps the softmax probabilities (B,NH,T,T); a flash-style CUDA kernel keeps only the
    // log-sum-exp (B,NH,T). A KV cache slots in beside this op (docs/MODEL.md): decoding appends k,v
    // of one position and runs the same math for one query.
    size_t (*attention_state_size)(int B, int T, int NH);
    void (*attention_forward)(float *out, float *state, const float *qkv, int B, int T, int C, int NH);
    // Backward: dqkv = the gradient, written. `out` is attention_forward's output: a flash-style backend
    // takes D_i = dout_i . out_i (= sum_j P_ij dP_ij) from it instead of recomputing P V.
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *out, const float *state, int B, int T,
                               int C, int NH);

    // The MLP's GELU (tanh approximation, as GPT-2), fused with the linear layers on either side of
    // it, because on a GPU it then rides the GEMMs' epilogues instead of a pass of its own over the
    // (N,4C) tensors. Forward: pre (N,OC) = inp (N,C) @ weight^T + bias (may be NULL), out (N,OC) =
    // gelu(pre); both are kept, pre for the backward. out may be computed from pre before pre is
    // rounded to the compute type.
    void (*matmul_gelu_forward)(float *pre, float *out, const float *inp, const float *weight, const float *bias,
                                int N, int C, int OC);
    // The backward of the linear layer that READS the GELU's output (inp (N,C) = out above), carried
    // through the GELU: dpre (N,C) = gelu'(pre) * (dout (N,OC) @ weight (OC,C)), dweight += dout^T inp,
    // dbias += column sums of dout (or NULL). dpre is written, like matmul_backward's dinp.
    void (*matmul_backward_gelu)(float *dpre, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, const float *pre, int N, int C, int OC);

    // out = a + b. (No backward op: the gradient of a sum is the same tensor for both terms, so the
    // model reads the residual stream's gradient buffer for both; model/gpt.c, layout_dacts.)
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);

    // Fused softmax + cross-entropy over the first V of Vp logits, per position (N = B*T):
    // losses[i] = weight[i] * -log softmax(logits[i])[targets[i]]. weight (N,) is the loss mask
    // (0 or 1; NULL = all ones); a token with weight 0 has exactly zero loss and gradient.
    // When dscale != 0, logits are OVERWRITTEN with dlogits = weight * dscale * (softmax - onehot)
    // (dscale = 1 / number of unmasked tokens in the whole optimizer step), padded columns with 0;
    // this never keeps the probabilities. With dscale == 0 logits are left untouched (eval).
    void (*classifier)(float *logits, float *losses, const int32_t *targets, const float *weight,
                       float dscale, int N, int V, int Vp);

    // ---- optimizer ----
    // Sum of squares of g (n,), accumulated in double, returned to the host.
    double (*sumsq)(const float *g, size_t n);
    // AdamW as torch.optim.AdamW: p *= 1 - lr*wd; m,v moments of g*grad_scale; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
    // t is the 1-based step; grad_scale carries global-norm clipping. p (n,) is elements
    // at .. at+n-1 of the master parameters. px, when not NULL, is the whole compute copy (another
    // buffer): its elements at .. at+n-1 are refreshed from the updated p with round_params' bits,
    // in the same pass (the master is read once a step instead of twice). NULL leaves it alone.
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                  float eps, float wd, int t, float grad_scale, float *px, size_t at);

    // ---- inference ----
    // Attention of N new tokens over a KV cache (model/decode.h). Row i of qkv (N,3C) is the token at
    // position pos[i] of the sequence held in cache slot slot[i]; kcache, vcache (S,maxT,C) are one
    // layer's cache. The op first STORES every row's k and v at (slot[i], pos[i]), then every row
    // attends causally over positions 0..pos[i] of its sequence, the same math as attention_forward:
    // positions < plen[i] are read from slot pslot[i] (a shared prompt prefix cached once), the rest
    // from slot[i]. Because all k,v are stored before any row attends, rows may come in any order and
    // one forward may hold many rows of one sequence (chunked prefill) and rows of a prefix with the
    // rows that read it. out (N,C). slot, pos, pslot, plen (N,) are backend int32 arrays.
    void (*attention_decode)(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot,
                             const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH,
                             int maxT);
} Backend;

extern const Backend backend_cpu;
// "cpu" (always), "cuda" (bf16) or "cuda-fp32" (when built with nvcc); NULL if unknown or not built in.
const Backend *backend_get(const char *name);
