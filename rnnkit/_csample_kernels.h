/* The sampler's inner loops, included once per instruction set by _csample.c (under a
   `#pragma GCC target`), with SUFFIX naming that copy: the compiler vectorises the same plain C for
   AVX-512, AVX2 + FMA and the baseline, and the module picks one copy when it loads.

   Everything here works on the NumPy buffers of rnnkit.fastsample.StepState (see that module for
   the layout): per layer k, h1[k] (n, H + 1) whose last column is 1, c[k] (n, H) for the LSTM, and
   out[k] (n, M_k), the product h1[k] @ w[k]: its first G columns are the recurrent half of the
   layer's next pre-activation, the rest the input of the layer above (the top layer: the logits). */

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SUFFIX)

/* tanh as a rational function (odd polynomial of degree 13 over even of degree 6, clamped), within
   3.5e-7 of the exact value everywhere; branch-free so that loops over it vectorise. */
static inline float FN(tanh_1)(float x) {
    const float clamp = 7.90531110763549805f;
    float y = x > clamp ? clamp : x;
    y = y < -clamp ? -clamp : y;
    float y2 = y * y;
    float p = -2.76076847742355e-16f;
    p = p * y2 + 2.00018790482477e-13f;
    p = p * y2 + -8.60467152213735e-11f;
    p = p * y2 + 5.12229709037114e-08f;
    p = p * y2 + 1.48572235717979e-05f;
    p = p * y2 + 6.37261928875436e-04f;
    p = p * y2 + 4.89352455891786e-03f;
    p = p * y;
    float q = 1.19825839466702e-06f;
    q = q * y2 + 1.18534705686654e-04f;
    q = q * y2 + 2.26843463243900e-03f;
    q = q * y2 + 4.89352518554385e-03f;
    float r = p / q;
    float a = x < 0 ? -x : x;
    return a < 4e-4f ? x : r;
}

static void FN(tanh_n)(float *y, const float *x, long n) { /* in place is fine */
    for (long i = 0; i < n; i++) y[i] = FN(tanh_1)(x[i]);
}

/* Vectors of VW floats (GCC's vector extensions: the compiler maps them onto zmm, ymm or xmm
   registers), so that a tile's accumulators live in registers for the whole pass over the rows. */
typedef float FN(vf) __attribute__((vector_size(VW * 4)));
typedef uint32_t FN(vu) __attribute__((vector_size(VW * 4)));
typedef uint16_t FN(vh) __attribute__((vector_size(VW * 2)));

static inline FN(vf) FN(load_f32)(const float *p) {
    FN(vf) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline FN(vf) FN(load_bf16)(const uint16_t *p) {
    FN(vh) x;
    memcpy(&x, p, sizeof x);
    FN(vu) u = __builtin_convertvector(x, FN(vu)) << 16;
    FN(vf) f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline FN(vf) FN(load_i8)(const int8_t *p) {
    /* GCC's __builtin_convertvector from int8 lanes to float comes out as a scalar conversion per
       lane, so the x86 copies widen with the sign-extending moves (vpmovsxbd) and convert in one
       instruction (vcvtdq2ps) */
    FN(vf) f;
#if VW == 16 && defined(HAVE_X86_COPIES)
    __m512 r = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
    memcpy(&f, &r, sizeof f);
#elif VW == 8 && defined(HAVE_X86_COPIES)
    __m256 r = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    memcpy(&f, &r, sizeof f);
#else
    for (int l = 0; l < VW; l++) f[l] = (float)p[l];
#endif
    return f;
}

/* The weights arrive packed (rnnkit.fastsample.pack): the columns of w (K, M) cut into tiles of TW,
   the last one padded with zero columns, each tile's K rows of TW side by side, so that a tile is one
   run of memory and a pass over it reads the bytes in order.

   out[s][c] = sum_i h[s][i] tile[i][c0 + c] for SBN streams from s0 and NJ vectors of columns from c0
   of one tile: the accumulators stay in registers while the K rows stream past (PAR sets of them
   take the even and the odd rows, for more products in flight); `valid` columns are stored. */
#define TILE(NAME, WT, LOADV, SBN, NJ, PAR)                                                             \
    static inline void NAME(const float *restrict h, long ldh, long s0, const WT *restrict tile, long K,   \
                            long c0, float *restrict out, long ldo, long valid) {                       \
        FN(vf) acc[PAR][SBN][NJ];                                                                       \
        for (int q = 0; q < PAR; q++)                                                                   \
            for (int s = 0; s < SBN; s++)                                                               \
                for (int j = 0; j < NJ; j++) acc[q][s][j] = (FN(vf)){0};                                 \
        long i = 0;                                                                                     \
        for (; i + PAR <= K; i += PAR)                                                                  \
            for (int q = 0; q < PAR; q++) {                                                             \
                FN(vf) wv[NJ];                                                                          \
                for (int j = 0; j < NJ; j++) wv[j] = LOADV(tile + (i + q) * TW + c0 + j * VW);          \
                for (int s = 0; s < SBN; s++) {                                                         \
                    float a = h[(s0 + s) * ldh + i + q];                                                \
                    for (int j = 0; j < NJ; j++) acc[q][s][j] += a * wv[j];                             \
                }                                                                                       \
            }                                                                                           \
        for (; i < K; i++) {                                                                            \
            FN(vf) wv[NJ];                                                                              \
            for (int j = 0; j < NJ; j++) wv[j] = LOADV(tile + i * TW + c0 + j * VW);                    \
            for (int s = 0; s < SBN; s++) {                                                             \
                float a = h[(s0 + s) * ldh + i];                                                        \
                for (int j = 0; j < NJ; j++) acc[0][s][j] += a * wv[j];                                 \
            }                                                                                           \
        }                                                                                               \
        float buf[NJ * VW];                                                                             \
        long keep = valid - c0 < NJ * VW ? valid - c0 : NJ * VW;                                        \
        for (int s = 0; s < SBN; s++) {                                                                 \
            for (int j = 0; j < NJ; j++) {                                                              \
                FN(vf) v = acc[0][s][j];                                                                \
                for (int q = 1; q < PAR; q++) v += acc[q][s][j];                                        \
                memcpy(buf + j * VW, &v, VW * 4);                                                       \
            }                                                                                           \
            memcpy(out + (s0 + s) * ldo + c0, buf, keep * sizeof(float));                               \
        }                                                                                               \
    }

/* out (n, M) = h (n, K) @ w for the column tiles t0..t1 - 1 of packed w: tile by tile (each read
   from memory once a step, then from cache for the other streams), four (or two) streams at a time,
   then one by one. */
#define MATMUL(NAME, WT, LOADV)                                                                         \
    TILE(CAT(NAME, _one), WT, LOADV, 1, TW / VW, PAR1)                                                  \
    TILE(CAT(NAME, _many), WT, LOADV, SBM, NJM, 1)                                                      \
    static void NAME(const float *restrict h, long ldh, long n, const WT *restrict w, long K, long M,       \
                     float *restrict out, long t0, long t1) {                                           \
        for (long t = t0; t < t1; t++) {                                                                \
            const WT *tile = w + t * K * TW;                                                            \
            float *o = out + t * TW;                                                                    \
            const long valid = M - t * TW < TW ? M - t * TW : TW;                                       \
            long s0 = 0;                                                                                \
            for (; s0 + SBM <= n; s0 += SBM)                                                            \
                for (long c0 = 0; c0 < valid; c0 += NJM * VW)                                           \
                    CAT(NAME, _many)(h, ldh, s0, tile, K, c0, o, M, valid);                             \
            for (; s0 < n; s0++) CAT(NAME, _one)(h, ldh, s0, tile, K, 0, o, M, valid);                  \
        }                                                                                               \
    }

MATMUL(FN(matmul_f32), float, FN(load_f32))
MATMUL(FN(matmul_bf16), uint16_t, FN(load_bf16))
MATMUL(FN(matmul_i8), int8_t, FN(load_i8))
#undef MATMUL
#undef TILE

/* Layer k's cells for every stream: its pre-activations (the input from below, or the table row of
   the token, plus the recurrent half waiting in out[k]) -> h (and c). */
static void FN(cells)(Net *net, int k, const int64_t *tokens) {
    const long n = net->n, H = net->H, G = net->G, M = net->M[k];
    for (long s = 0; s < n; s++) {
        const float *x = k == 0 ? net->table + tokens[s] * G : net->out[k - 1] + s * net->M[k - 1] + G;
        const float *rec = net->out[k] + s * M;
        float *h = net->h1[k] + s * (H + 1);
        float *pre = net->pre;
        if (net->cell == CELL_LSTM) { /* gates [i, f, o | g]; i, f, o arrive halved */
            float *c = net->c[k] + s * H;
            for (long j = 0; j < G; j++) pre[j] = x[j] + rec[j];
            FN(tanh_n)(pre, pre, G);
            for (long j = 0; j < 3 * H; j++) pre[j] = pre[j] * 0.5f + 0.5f;
            for (long j = 0; j < H; j++) c[j] = c[j] * pre[H + j] + pre[j] * pre[3 * H + j];
            FN(tanh_n)(net->tmp, c, H);
            for (long j = 0; j < H; j++) h[j] = net->tmp[j] * pre[2 * H + j];
        } else if (net->cell == CELL_GRU) { /* [r, z | n]; r, z halved; rec's n part is W_hn h + b_hn */
            for (long j = 0; j < 2 * H; j++) pre[j] = x[j] + rec[j];
            FN(tanh_n)(pre, pre, 2 * H);
            for (long j = 0; j < 2 * H; j++) pre[j] = pre[j] * 0.5f + 0.5f;
            float *t = net->tmp;
            for (long j = 0; j < H; j++) t[j] = pre[j] * rec[2 * H + j] + x[2 * H + j];
            FN(tanh_n)(t, t, H);
            for (long j = 0; j < H; j++) h[j] = (h[j] - t[j]) * pre[H + j] + t[j];
        } else if (net->cell == CELL_RELU) {
            for (long j = 0; j < H; j++) {
                float v = x[j] + rec[j];
                h[j] = v > 0 ? v : 0;
            }
        } else {
            for (long j = 0; j < H; j++) pre[j] = x[j] + rec[j];
            FN(tanh_n)(h, pre, H);
        }
    }
}

/* Layer k's product out[k] = h1[k] @ w[k], column tiles t0..t1 - 1 (a thread's share). */
static void FN(product)(Net *net, int k, long t0, long t1) {
    const long H = net->H;
    if (net->wtype == W_BF16)
        FN(matmul_bf16)(net->h1[k], H + 1, net->n, (const uint16_t *)net->w[k], H + 1, net->M[k], net->out[k], t0, t1);
    else if (net->wtype == W_F32)
        FN(matmul_f32)(net->h1[k], H + 1, net->n, (const float *)net->w[k], H + 1, net->M[k], net->out[k], t0, t1);
    else { /* int8: the H weight rows (no bias row) in whole numbers, then each column's scale and bias */
        FN(matmul_i8)(net->h1[k], H + 1, net->n, (const int8_t *)net->w[k], H, net->M[k], net->out[k], t0, t1);
        const long M = net->M[k], c1 = t1 * TW < M ? t1 * TW : M;
        const float *scale = net->aux[k], *bias = net->aux[k] + M;
        for (long s = 0; s < net->n; s++) {
            float *o = net->out[k] + s * M;
            for (long c = t0 * TW; c < c1; c++) o[c] = o[c] * scale[c] + bias[c];
        }
    }
}

/* The FMA peak probe (rnnkit.fastsample.fma_peak): independent chains of VW-lane multiply-adds kept in
   registers, nothing read from memory, enough chains to cover the FMA latency on two ports (16 of
   the 32 AVX-512 registers; 10 of the 16 below). Each chain is its own variable (an array would live
   on the stack), and an empty asm statement after each multiply-add keeps the compiler from folding
   the loop. Returns the float32 flops done (2 per lane per multiply-add). */
#define FMA1(v) do { v = v * m + a; __asm__ volatile("" : "+v"(v)); } while (0)
#define FMA10 FMA1(c0); FMA1(c1); FMA1(c2); FMA1(c3); FMA1(c4); FMA1(c5); FMA1(c6); FMA1(c7); FMA1(c8); FMA1(c9)
static double FN(fma_loop)(long iters) {
    FN(vf) m, a, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9;
#if VW == 16
    FN(vf) c10, c11, c12, c13, c14, c15;
    const int chains = 16;
#else
    const int chains = 10;
#endif
    for (int l = 0; l < VW; l++) {
        m[l] = 0.9999999f, a[l] = 1e-7f;
        c0[l] = c1[l] = c2[l] = c3[l] = c4[l] = c5[l] = c6[l] = c7[l] = c8[l] = c9[l] = 1.0f + 1e-3f * (float)l;
#if VW == 16
        c10[l] = c11[l] = c12[l] = c13[l] = c14[l] = c15[l] = 1.0f - 1e-3f * (float)l;
#endif
    }
    for (long it = 0; it < iters; it++) {
        FMA10;
#if VW == 16
        FMA1(c10); FMA1(c11); FMA1(c12); FMA1(c13); FMA1(c14); FMA1(c15);
#endif
    }
    FN(vf) sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9;
#if VW == 16
    sum += c10 + c11 + c12 + c13 + c14 + c15;
#endif
    volatile float sink = 0; /* the result is used, so the loop stays */
    for (int l = 0; l < VW; l++) sink += sum[l];
    (void)sink;
    return 2.0 * chains * VW * (double)iters;
}
#undef FMA10
#undef FMA1

#undef FN
#undef CAT
#undef CAT2
