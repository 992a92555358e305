/* bf16 as the upper 16 bits of an IEEE float: loading is exact; storing rounds to nearest-even and makes any
 * NaN the quiet NaN 0x7FC0, as torch's c10::BFloat16 does, so the kernels' bf16 results are torch's. */
#ifndef CONVSCOPE_BF16_H
#define CONVSCOPE_BF16_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float bf16_load(uint16_t v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t bf16_store(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f)) return 0x7FC0;
    bits += 0x7FFF + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

#define LOAD_F32(v) (v)
#define STORE_F32(f) (f)
#define LOAD_BF16(v) bf16_load(v)
#define STORE_BF16(f) bf16_store(f)

#endif
