/* ReLU followed by a 2x2 max pool with stride 2, on channels-last (N, H, W, C) tensors, in one pass; an odd
 * size's last row or column is left out (floor), as torch's pool does.
 *
 * Eager torch runs this as three full-size passes forward (ReLU, the pool, which also writes 64-bit argmax
 * indices) and three backward (a zero fill of the input gradient, the scatter, ReLU's mask). Here the forward
 * reads the input once and writes the pooled output and a one-byte window position; the backward writes every
 * input-gradient value once, zero or the output gradient, so nothing is filled first.
 *
 * The results are those of eager torch, bit for bit: ReLU and max only pick values, never round them. The
 * maximum is taken over the raw input, first position of the window winning a tie (torch's rule). Where that
 * maximum is positive it is also the maximum after ReLU, at the same position; where it is not, the output is
 * 0 and ReLU's gradient is 0 wherever the window's gradient would have gone. A NaN wins its window, as in
 * torch. bf16 values are read as the upper half of a float, which is exact.
 *
 * Built by convscope.models.native with the C compiler found at run time; without one, convscope keeps
 * torch's eager path. OpenMP here resolves to the libgomp torch itself loaded, so both share one thread pool.
 */
#include "bf16.h"

#define RELU_MAX_POOL(NAME, T, LOAD)                                                                         \
    void NAME##_forward(const T *x, T *out, uint8_t *where, int64_t n, int64_t h, int64_t w, int64_t c) {    \
        const int64_t ho = h / 2, wo = w / 2;                                                                \
        _Pragma("omp parallel for collapse(2) schedule(static)")                                             \
        for (int64_t b = 0; b < n; b++) {                                                                    \
            for (int64_t i = 0; i < ho; i++) {                                                               \
                const T *row0 = x + ((b * h + 2 * i) * w) * c;                                               \
                const T *row1 = row0 + w * c;                                                                \
                T *o = out + ((b * ho + i) * wo) * c;                                                        \
                uint8_t *k = where ? where + ((b * ho + i) * wo) * c : 0;                                    \
                for (int64_t j = 0; j < wo; j++) {                                                           \
                    const T *p[4] = {row0 + 2 * j * c, row0 + (2 * j + 1) * c, row1 + 2 * j * c,            \
                                     row1 + (2 * j + 1) * c};                                                \
                    for (int64_t ch = 0; ch < c; ch++) {                                                     \
                        T best = p[0][ch];                                                                   \
                        float top = LOAD(best);                                                              \
                        uint8_t at = 0;                                                                      \
                        for (uint8_t q = 1; q < 4; q++) {                                                    \
                            float v = LOAD(p[q][ch]);                                                        \
                            if (v > top || isnan(v)) {                                                       \
                                top = v;                                                                     \
                                best = p[q][ch];                                                             \
                                at = q;                                                                      \
                            }                                                                                \
                        }                                                                                    \
                        o[j * c + ch] = (top > 0.0f || isnan(top)) ? best : (T)0;                            \
                        if (k) k[j * c + ch] = at;                                                           \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
                                                                                                             \
    /* One pass in the input gradient's own order: each value is the output gradient if this is its window's \
       position and the pooled output was kept by ReLU (the forward wrote an exact 0 where it was not), else 0. */ \
    void NAME##_backward(const T *restrict grad, const T *restrict out, const uint8_t *restrict where,        \
                         T *restrict grad_in, int64_t n, int64_t h, int64_t w, int64_t c) {                  \
        const int64_t ho = h / 2, wo = w / 2;                                                                \
        _Pragma("omp parallel for collapse(2) schedule(static)")                                             \
        for (int64_t b = 0; b < n; b++) {                                                                    \
            for (int64_t r = 0; r < h; r++) {                                                                \
                T *restrict dst = grad_in + ((b * h + r) * w) * c;                                           \
                for (int64_t x = 0; x < w; x++) {                                                            \
                    T *restrict d = dst + x * c;                                                             \
                    if (r >= 2 * ho || x >= 2 * wo) { /* the last row or column of an odd size: no window */ \
                        for (int64_t ch = 0; ch < c; ch++) d[ch] = (T)0;                                     \
                        continue;                                                                            \
                    }                                                                                        \
                    const int64_t at = ((b * ho + r / 2) * wo + x / 2) * c;                                  \
                    const uint8_t here = (uint8_t)((r & 1) * 2 + (x & 1));                                   \
                    const T *restrict g = grad + at;                                                         \
                    const T *restrict o = out + at;                                                          \
                    const uint8_t *restrict k = where + at;                                                  \
                    for (int64_t ch = 0; ch < c; ch++) d[ch] = (k[ch] == here && o[ch] != 0) ? g[ch] : (T)0; \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

RELU_MAX_POOL(relu_max_pool_f32, float, LOAD_F32)
RELU_MAX_POOL(relu_max_pool_bf16, uint16_t, LOAD_BF16)
