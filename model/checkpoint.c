// Model and optimizer checkpoint files (format in checkpoint.h).
#include "model/checkpoint.h"
#include "util/util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

_Static_assert(sizeof(CkptHeader) == 128, "model checkpoint header is 128 bytes on disk");
_Static_assert(sizeof(TrainState) == 72, "train state is 72 bytes on disk");
_Static_assert(sizeof(OptimHeader) == 128, "optimizer checkpoint header is 128 bytes on disk");

static bool fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

// header (crc field zeroed) then payload arrays
static uint32_t file_crc(const void *hdr, size_t hsize, const float *const *arrays, int n_arrays, size_t n) {
    uint32_t crc = 0;
    crc = crc32_update(crc, hdr, hsize);
    for (int i = 0; i < n_arrays; i++) crc = crc32_update(crc, arrays[i], n * sizeof(float));
    return crc;
}

void checkpoint_save_model(const char *path, const GPT *m, uint64_t tokenizer_fingerprint, uint64_t step) {
    CkptHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.version = CKPT_VERSION;
    h.header_size = sizeof h;
    h.n_layer = m->cfg.n_layer; h.n_head = m->cfg.n_head; h.n_embd = m->cfg.n_embd;
    h.max_seq_len = m->cfg.max_seq_len; h.vocab_size = m->cfg.vocab_size; h.padded_vocab_size = m->cfg.padded_vocab_size;
    h.tokenizer_fingerprint = tokenizer_fingerprint;
    h.step = step;
    h.n_params = m->n_params;
    float *params = xmalloc(m->n_params * sizeof *params);
    gpt_get_params(m, params);
    const float *arrays[1] = {params};
    h.crc32 = file_crc(&h, sizeof h, arrays, 1, m->n_params);
    OutFile *o = out_open(path);
    xfwrite(&h, sizeof h, 1, o->f, path);
    xfwrite(params, sizeof *params, m->n_params, o->f, path);
    out_close(o);
    free(params);
}

// Reads a whole checkpoint file and checks magic, version, size and CRC. *buf gets the bytes.
static bool read_checked(const char *path, const char *magic, size_t hsize, char **buf, size_t *len, char *err,
                         size_t errlen) {
    *buf = NULL;
    int64_t size = file_size(path);
    if (size < 0) return fail(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno));
    *buf = read_file(path, len);
    const char *what = !strcmp(magic, CKPT_MAGIC) ? "model checkpoint (model.bin)" : "optimizer checkpoint (optim.bin)";
    if (*len < 8 || memcmp(*buf, magic, 8)) return fail(err, errlen, "%s: not a tracellm %s (bad magic)", path, what);
    if (*len < hsize) return fail(err, errlen, "%s: %zu bytes, too short for a checkpoint header (truncated?)", path, *len);
    uint32_t version, header_size;
    memcpy(&version, *buf + 8, 4);
    memcpy(&header_size, *buf + 12, 4);
    if (version != CKPT_VERSION) return fail(err, errlen, "%s: checkpoint version %u, this build reads version %u", path, version, CKPT_VERSION);
    if (header_size != hsize) return fail(err, errlen, "%s: header size %u, expected %zu (corrupt)", path, header_size, hsize);
    return true;
}

static bool check_crc(const char *path, char *buf, size_t hsize, size_t crc_off, size_t len, char *err, size_t errlen) {
    uint32_t stored;
    memcpy(&stored, buf + crc_off, 4);
    memset(buf + crc_off, 0, 4);
    uint32_t crc = crc32_update(crc32_update(0, buf, hsize), buf + hsize, len - hsize);
    memcpy(buf + crc_off, &stored, 4);
    if (crc != stored) return fail(err, errlen, "%s: CRC32 mismatch (corrupt checkpoint)", path);
    return true;
}

bool checkpoint_load_model(const char *path, GPT *m, const Backend *be, CkptHeader *hout, char *err, size_t errlen) {
    char *buf;
    size_t len;
    CkptHeader h;
    bool ok = read_checked(path, CKPT_MAGIC, sizeof h, &buf, &len, err, errlen);
    if (!ok) { free(buf); return false; }
    memcpy(&h, buf, sizeof h);
    GPTConfig cfg = {.n_layer = h.n_layer, .n_head = h.n_head, .n_embd = h.n_embd, .max_seq_len = h.max_seq_len,
                     .vocab_size = h.vocab_size, .padded_vocab_size = h.padded_vocab_size};
    const char *bad = gpt_config_check(&cfg);
    size_t sizes[N_PARAM_TENSORS], n = 0;
    if (!bad) {
        gpt_param_sizes(&cfg, sizes);
        for (int i = 0; i < N_PARAM_TENSORS; i++) n += sizes[i];
    }
    if (bad) ok = fail(err, errlen, "%s: invalid model configuration in header: %s", path, bad);
    else if (h.n_params != n) ok = fail(err, errlen, "%s: header says %llu parameters, its configuration has %zu (corrupt)", path, (unsigned long long)h.n_params, n);
    else if (len != sizeof h + n * sizeof(float))
        ok = fail(err, errlen, "%s: %zu bytes, expected %zu for %zu parameters (truncated or corrupt)", path, len, sizeof h + n * sizeof(float), n);
    else ok = check_crc(path, buf, sizeof h, offsetof(CkptHeader, crc32), len, err, errlen);
    if (ok) {
        gpt_create(m, &cfg, be);
        gpt_set_params(m, (const float *)(buf + sizeof h));
        if (hout) *hout = h;
    }
    free(buf);
    return ok;
}

void checkpoint_save_optim(const char *path, const GPT *m, const TrainState *st) {
    if (!m->m) fatal("internal: saving an optimizer state that was never created");
    OptimHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, OPTIM_MAGIC, 8);
    h.version = CKPT_VERSION;
    h.header_size = sizeof h;
    h.n_params = m->n_params;
    h.state = *st;
    size_t n = m->n_params;
    float *mv = xmalloc(2 * n * sizeof *mv);
    m->be->download(mv, m->m, n * sizeof *mv);
    m->be->download(mv + n, m->v, n * sizeof *mv);
    const float *arrays[2] = {mv, mv + n};
    h.crc32 = file_crc(&h, sizeof h, arrays, 2, n);
    OutFile *o = out_open(path);
    xfwrite(&h, sizeof h, 1, o->f, path);
    xfwrite(mv, sizeof *mv, 2 * n, o->f, path);
    out_close(o);
    free(mv);
}

bool checkpoint_load_optim(const char *path, GPT *m, TrainState *st, char *err, size_t errlen) {
    char *buf;
    size_t len;
    OptimHeader h;
    bool ok = read_checked(path, OPTIM_MAGIC, sizeof h, &buf, &len, err, errlen);
    if (!ok) { free(buf); return false; }
    memcpy(&h, buf, sizeof h);
    size_t n = m->n_params;
    if (h.n_params != n) ok = fail(err, errlen, "%s: holds moments for %llu parameters, the model has %zu", path, (unsigned long long)h.n_params, n);
    else if (len != sizeof h + 2 * n * sizeof(float))
        ok = fail(err, errlen, "%s: %zu bytes, expected %zu (truncated or corrupt)", path, len, sizeof h + 2 * n * sizeof(float));
    else ok = check_crc(path, buf, sizeof h, offsetof(OptimHeader, crc32), len, err, errlen);
    if (ok) {
        if (!m->m) {
            m->m = m->be->alloc(n * sizeof(float));
            m->v = m->be->alloc(n * sizeof(float));
        }
        m->be->upload(m->m, buf + sizeof h, n * sizeof(float));
        m->be->upload(m->v, buf + sizeof h + n * sizeof(float), n * sizeof(float));
        *st = h.state;
    }
    free(buf);
    return ok;
}
