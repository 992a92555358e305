/* BatchNormalization, then ReLU and a 2x2 max pool (stride 2, floor), on channels-last (N, H, W, C) bf16
 * tensors: the `fast` preset's block after each convolution, as it runs under bf16 autocast.
 *
 * Eager torch makes five full-size passes forward (BatchNorm's statistics and its output, ReLU, the pool and its
 * 64-bit indices) and five backward; its bf16 BatchNorm on channels-last tensors is also 2-3x slower than on
 * NCHW ones, and was a third of `fast`'s bf16 training step (BENCHMARKS.md). Here:
 *   forward:  one pass for the per-channel sums, one that normalises, rounds to bf16 (eager BatchNorm's output
 *             dtype), and pools with ReLU, writing the pooled values and a one-byte window position;
 *   backward: one pass over the pooled gradient for BatchNorm's two sums (only the window maxima that ReLU kept
 *             receive a gradient), one that writes every input-gradient value once.
 * Sums are taken in double over a fixed split of the rows, added in a fixed order, so results do not depend on
 * the number of threads. Arithmetic is fp32 like torch's, in another order: results are within bf16's
 * resolution of the eager layers, not bit for bit, which is why convscope uses this for bf16 only. A few rows
 * (width x channels values) are kept on the stack; convscope.models.fused sends no wider rows than 65,536 values.
 */
#include <stdlib.h>

#include "bf16.h"

#define CHUNKS 64 /* a fixed split of the rows: partial sums are added in this order, whatever the threads */

/* `part` holds `chunks` rows of 2*c doubles; added in chunk order into first[c] and second[c]. */
static void add_partials(const double *part, int64_t chunks, int64_t c, double *first, double *second) {
    for (int64_t ch = 0; ch < c; ch++) first[ch] = second[ch] = 0.0;
    for (int64_t k = 0; k < chunks; k++)
        for (int64_t ch = 0; ch < c; ch++) {
            first[ch] += part[k * 2 * c + ch];
            second[ch] += part[k * 2 * c + c + ch];
        }
}

/* The batch's mean and 1/sqrt(var + eps) per channel (biased variance, as BatchNorm normalises with), over
 * `rows` = N*H*W rows; updates the running statistics as torch does (unbiased variance, momentum weighting the
 * batch) when they are given. Returns -1 if memory for the partial sums ran out. */
int batch_norm_statistics_bf16(const uint16_t *x, int64_t rows, int64_t c, double eps, double momentum,
                               float *running_mean, float *running_var, float *mean, float *invstd) {
    const int64_t chunks = rows < CHUNKS ? rows : CHUNKS;
    double *part = calloc((size_t)(chunks * 2 * c + 2 * c), sizeof(double));
    if (!part) return -1;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++) {
        double *restrict s = part + k * 2 * c, *restrict q = s + c;
        for (int64_t r = rows * k / chunks; r < rows * (k + 1) / chunks; r++)
            for (int64_t ch = 0; ch < c; ch++) {
                const double v = bf16_load(x[r * c + ch]);
                s[ch] += v;
                q[ch] += v * v;
            }
    }
    double *sum = part + chunks * 2 * c, *squares = sum + c;
    add_partials(part, chunks, c, sum, squares);
    for (int64_t ch = 0; ch < c; ch++) {
        const double m = sum[ch] / rows;
        double var = squares[ch] / rows - m * m;
        if (var < 0.0) var = 0.0;
        mean[ch] = (float)m;
        invstd[ch] = (float)(1.0 / sqrt(var + eps));
        if (running_mean) {
            const double unbiased = rows > 1 ? var * rows / (rows - 1) : var;
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * m);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
        }
    }
    free(part);
    return 0;
}

/* y = x * alpha + beta per channel, alpha = weight * invstd, beta = bias - mean * alpha (torch's own form),
 * rounded to bf16; weight and bias may be NULL (1 and 0). */
static void affine_terms(const float *mean, const float *invstd, const float *weight, const float *bias, int64_t c,
                         float *alpha, float *beta) {
    for (int64_t ch = 0; ch < c; ch++) {
        alpha[ch] = invstd[ch] * (weight ? weight[ch] : 1.0f);
        beta[ch] = (bias ? bias[ch] : 0.0f) - mean[ch] * alpha[ch];
    }
}

/* A row of w pixels of c channels, normalised and rounded to bf16: one flat loop over the row, with alpha and
 * beta laid out along it, so it vectorises whatever c is (a loop over 16 channels did not fill the vectors). */
static void normalise_row(const uint16_t *restrict x, const float *restrict alpha, const float *restrict beta,
                          uint16_t *restrict y, int64_t length) {
    for (int64_t e = 0; e < length; e++) y[e] = bf16_store(bf16_load(x[e]) * alpha[e] + beta[e]);
}

/* One row of windows from two normalised rows, pooled with ReLU by the rules of pool.c (first position wins a
 * tie, a NaN wins its window, a maximum that is not positive is cut to 0), writing the pooled values and, if
 * `where` is given, each window's position of its maximum. */
static void pool_row(const uint16_t *restrict top_row, const uint16_t *restrict bottom_row, uint16_t *restrict out,
                     uint8_t *restrict where, int64_t wo, int64_t c) {
    for (int64_t j = 0; j < wo; j++) {
        const uint16_t *p[4] = {top_row + 2 * j * c, top_row + (2 * j + 1) * c, bottom_row + 2 * j * c,
                                bottom_row + (2 * j + 1) * c};
        for (int64_t ch = 0; ch < c; ch++) {
            uint16_t best = p[0][ch];
            float top = bf16_load(best);
            uint8_t at = 0;
            for (uint8_t q = 1; q < 4; q++) { /* selections on values, not branches: the loop vectorises */
                const float v = bf16_load(p[q][ch]);
                const int take = v > top || isnan(v);
                top = take ? v : top;
                best = take ? p[q][ch] : best;
                at = take ? q : at;
            }
            out[j * c + ch] = (top > 0.0f || isnan(top)) ? best : 0;
            if (where) where[j * c + ch] = at;
        }
    }
}

void batch_norm_relu_max_pool_bf16_forward(const uint16_t *x, const float *mean, const float *invstd,
                                           const float *weight, const float *bias, uint16_t *out, uint8_t *where,
                                           int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t ho = h / 2, wo = w / 2, length = w * c;
    float terms[2 * c], along[2 * length];
    affine_terms(mean, invstd, weight, bias, c, terms, terms + c);
    for (int64_t e = 0; e < length; e++) {
        along[e] = terms[e % c];
        along[length + e] = terms[c + e % c];
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; b++)
        for (int64_t i = 0; i < ho; i++) {
            uint16_t rows[2 * length];
            const uint16_t *row = x + ((b * h + 2 * i) * w) * c;
            const int64_t at = ((b * ho + i) * wo) * c;
            normalise_row(row, along, along + length, rows, length);
            normalise_row(row + length, along, along + length, rows + length, length);
            pool_row(rows, rows + length, out + at, where ? where + at : 0, wo, c);
        }
}

/* Adds one row of windows' share of BatchNorm's backward sums: dy and dy * (x - mean) over the positions that
 * receive a gradient, each window's maximum when ReLU kept it. Branch-free, so it vectorises across channels. */
static void gradient_sums_row(const uint16_t *restrict grad, const uint16_t *restrict out,
                              const uint8_t *restrict where, const uint16_t *restrict top_row,
                              const uint16_t *restrict bottom_row, const float *restrict mean, int64_t wo, int64_t c,
                              double *restrict dy_sum, double *restrict dy_x_sum) {
    for (int64_t j = 0; j < wo; j++) {
        const uint16_t *p0 = top_row + 2 * j * c, *p1 = p0 + c, *p2 = bottom_row + 2 * j * c, *p3 = p2 + c;
        const int64_t e = j * c;
        for (int64_t ch = 0; ch < c; ch++) {
            /* selections as bit masks, not branches, so the loop vectorises */
            const uint16_t kept = (uint16_t)-(out[e + ch] != 0), q = where[e + ch];
            const uint16_t at_max = (uint16_t)((p0[ch] & -(q == 0)) | (p1[ch] & -(q == 1)) | (p2[ch] & -(q == 2)) |
                                               (p3[ch] & -(q == 3)));
            const float dy = bf16_load(grad[e + ch] & kept);
            dy_sum[ch] += dy;
            dy_x_sum[ch] += (double)(dy * (bf16_load(at_max) - mean[ch]));
        }
    }
}

/* One input row's gradient: gain * dy + offset + slope * (x - mean) per channel, the four terms laid out along
 * the row (`along`: gain, offset, slope, mean, each w * c long). dy is the pooled gradient at the columns its
 * window's maximum came from in this row (`row_bit` 0 for a window's top row, 2 for its bottom row) if ReLU kept
 * that maximum, else 0; it is 0 all along a row no window covers (`grad` NULL) and past 2 * wo columns. dy is
 * gathered first into `dy`, so the arithmetic is one flat loop that vectorises whatever c is. */
static void input_gradient_row(const uint16_t *restrict x, const uint16_t *restrict grad, const uint16_t *restrict out,
                               const uint8_t *restrict where, uint8_t row_bit, const float *restrict along,
                               float *restrict dy, uint16_t *restrict grad_in, int64_t w, int64_t wo, int64_t c) {
    const int64_t length = w * c, covered = grad ? 2 * wo * c : 0;
    for (int64_t col = 0; col < covered / c; col++) {
        const int64_t at = (col / 2) * c;
        const uint8_t here = (uint8_t)(row_bit + (col & 1));
        for (int64_t ch = 0; ch < c; ch++) {
            const uint16_t takes = (uint16_t)-(where[at + ch] == here && out[at + ch] != 0);
            dy[col * c + ch] = bf16_load(grad[at + ch] & takes);
        }
    }
    for (int64_t e = covered; e < length; e++) dy[e] = 0.0f;
    const float *restrict gain = along, *restrict offset = along + length, *restrict slope = along + 2 * length,
                          *restrict mean = along + 3 * length;
    for (int64_t e = 0; e < length; e++)
        grad_in[e] = bf16_store(gain[e] * dy[e] + offset[e] + slope[e] * (bf16_load(x[e]) - mean[e]));
}

/* The gradients of x, weight and bias. With dy the gradient reaching BatchNorm's output (the pooled gradient at
 * each window's kept maximum, 0 elsewhere) and xhat = (x - mean) * invstd:
 *   grad_bias = sum dy,  grad_weight = sum dy * xhat,
 *   grad_x = weight * invstd * (dy - grad_bias / rows - xhat * grad_weight / rows).
 * Returns -1 if memory for the partial sums ran out. */
int batch_norm_relu_max_pool_bf16_backward(const uint16_t *grad, const uint16_t *out, const uint8_t *where,
                                           const uint16_t *x, const float *mean, const float *invstd,
                                           const float *weight, float *grad_weight, float *grad_bias,
                                           uint16_t *grad_in, int64_t n, int64_t h, int64_t w, int64_t c) {
    const int64_t ho = h / 2, wo = w / 2, pooled_rows = n * ho;
    const int64_t chunks = pooled_rows < CHUNKS ? pooled_rows : CHUNKS;
    double *part = calloc((size_t)(chunks * 2 * c + 2 * c), sizeof(double));
    if (!part) return -1;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++)
        for (int64_t row = pooled_rows * k / chunks; row < pooled_rows * (k + 1) / chunks; row++) {
            const int64_t b = row / ho, i = row % ho, at = row * wo * c;
            const uint16_t *top_row = x + ((b * h + 2 * i) * w) * c;
            gradient_sums_row(grad + at, out + at, where + at, top_row, top_row + w * c, mean, wo, c,
                              part + k * 2 * c, part + k * 2 * c + c);
        }
    double *dy_sum = part + chunks * 2 * c, *dy_x_sum = dy_sum + c;
    add_partials(part, chunks, c, dy_sum, dy_x_sum);
    const int64_t length = w * c;
    float along[4 * length]; /* gain, offset, slope and mean, repeated along a row */
    for (int64_t ch = 0; ch < c; ch++) {
        const double g = (weight ? weight[ch] : 1.0) * invstd[ch], count = (double)n * h * w;
        grad_bias[ch] = (float)dy_sum[ch];
        grad_weight[ch] = (float)(dy_x_sum[ch] * invstd[ch]);
        for (int64_t e = ch; e < length; e += c) {
            along[e] = (float)g;
            along[length + e] = (float)(-g * dy_sum[ch] / count);
            along[2 * length + e] = (float)(-g * invstd[ch] * invstd[ch] * dy_x_sum[ch] / count);
            along[3 * length + e] = mean[ch];
        }
    }
    free(part);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; b++)
        for (int64_t r = 0; r < h; r++) {
            float dy[length];
            const int64_t at = ((b * h + r) * w) * c, pooled = ((b * ho + r / 2) * wo) * c;
            if (r >= 2 * ho) /* the row a floor pool leaves out of an odd height: no window, dy = 0 */
                input_gradient_row(x + at, 0, 0, 0, 0, along, dy, grad_in + at, w, wo, c);
            else
                input_gradient_row(x + at, grad + pooled, out + pooled, where + pooled, (uint8_t)((r & 1) * 2), along,
                                   dy, grad_in + at, w, wo, c);
        }
    return 0;
}
