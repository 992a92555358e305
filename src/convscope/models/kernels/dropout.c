/* Dropout in one pass each way: the mask is a pure function of (seed, position), so it is never stored.
 *
 * Value i of the tensor (in memory order) is kept when 16 bits of a 64-bit hash are at or above `threshold`:
 * bits 16*(i%4) .. 16*(i%4)+15 of splitmix64's output for the counter seed + (i/4 + 1) * golden. Forward writes
 * x * scale or x * 0 (a NaN stays NaN, as in eager torch); backward recomputes the same bits and scales the
 * gradient the same way. convscope.models.fused holds the same hash in torch operations: the fallback when no
 * compiler is at hand, and the tests' oracle.
 *
 * bf16 values are products rounded to nearest-even, as torch's own bf16 multiply rounds them; the caller
 * passes the scale already rounded to the tensor's dtype, as eager `keep.to(dtype) * scale` is.
 */
#include "bf16.h"

static inline uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define BLOCK 256 /* values per step: a multiple of 4, so each block starts on a whole hash word */

/* Used for both directions: forward scales x, backward scales the output gradient, with the same mask. The
 * block's bits are made first, a 64-bit hash per four values, then applied: two loops the compiler vectorizes. */
#define DROPOUT(NAME, T, LOAD, STORE)                                                                        \
    void NAME(const T *restrict in, T *restrict out, int64_t n, uint64_t seed, uint16_t threshold,           \
              float scale) {                                                                                 \
        _Pragma("omp parallel for schedule(static)")                                                         \
        for (int64_t start = 0; start < n; start += BLOCK) {                                                 \
            uint64_t words[BLOCK / 4];                                                                       \
            uint16_t bits[BLOCK];                                                                            \
            const uint64_t first = (uint64_t)start / 4;                                                      \
            for (int64_t w = 0; w < BLOCK / 4; w++)                                                          \
                words[w] = splitmix64(seed + (first + (uint64_t)w + 1) * 0x9E3779B97F4A7C15ull);             \
            /* value 4w+k takes bits 16k..16k+15 of word w: the words' own bytes on a little-endian CPU */    \
            for (int64_t w = 0; w < BLOCK / 4; w++)                                                          \
                for (int k = 0; k < 4; k++) bits[4 * w + k] = (uint16_t)(words[w] >> (16 * k));              \
            const int64_t count = n - start < BLOCK ? n - start : BLOCK;                                     \
            const T *restrict x = in + start;                                                                \
            T *restrict y = out + start;                                                                     \
            for (int64_t i = 0; i < count; i++) y[i] = STORE(LOAD(x[i]) * (bits[i] >= threshold ? scale : 0.0f)); \
        }                                                                                                    \
    }

DROPOUT(dropout_f32, float, LOAD_F32, STORE_F32)
DROPOUT(dropout_bf16, uint16_t, LOAD_BF16, STORE_BF16)
