/* Dropout in one pass each way: the mask is a pure function of (seed, position), so it is never stored.
 *
 * Value i of the tensor (in memory order) is kept when 16 bits of a 64-bit hash are at or above `threshold`:
 * bits 16*(i%4) .. 16*(i%4)+15 of splitmix64's output for the counter seed + (i/4 + 1) * golden. Forward writes
 * x * scale or x * 0 (a NaN stays NaN, as in eager torch); backward recomputes the same bits and scales the
 * gradient the same way. convscope.models.fused holds
 * the same hash in torch operations: the fallback when no compiler is at hand, and the tests' oracle.
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

static inline uint16_t bits_at(uint64_t seed, int64_t i) {
    const uint64_t word = splitmix64(seed + ((uint64_t)(i >> 2) + 1) * 0x9E3779B97F4A7C15ull);
    return (uint16_t)(word >> (16 * (i & 3)));
}

/* Used for both directions: forward scales x, backward scales the output gradient, with the same mask. */
#define DROPOUT(NAME, T, LOAD, STORE)                                                                        \
    void NAME(const T *restrict in, T *restrict out, int64_t n, uint64_t seed, uint16_t threshold,           \
              float scale) {                                                                                 \
        _Pragma("omp parallel for schedule(static)")                                                         \
        for (int64_t block = 0; block < (n + 255) / 256; block++) {                                          \
            const int64_t end = block * 256 + 256 < n ? block * 256 + 256 : n;                               \
            for (int64_t i = block * 256; i < end; i++)                                                      \
                out[i] = STORE(LOAD(in[i]) * (bits_at(seed, i) >= threshold ? scale : 0.0f));                 \
        }                                                                                                    \
    }

DROPOUT(dropout_f32, float, LOAD_F32, STORE_F32)
DROPOUT(dropout_bf16, uint16_t, LOAD_BF16, STORE_BF16)
