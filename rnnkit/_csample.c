/* rnnkit._csample: the fast sampler's per-character loop in C (rnnkit.fastsample drives it).

   One call runs many steps of N streams: the recurrent step on rnnkit.fastsample's pre-arranged
   weights (fp32, or a bf16 or int8 copy read as fp32), then the choice of each stream's next token from its
   logits with the caller's uniform numbers, exactly as rnnkit.sample.choose does (greedy; or
   temperature, top-k and top-p, then the inverse CDF). The inner loops are compiled three times, for
   AVX-512, AVX2 + FMA and the baseline x86-64 (or once, elsewhere), and the copy the CPU supports is
   chosen when the module loads. Nothing here allocates per step or holds the GIL while it runs. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16
enum { CELL_TANH = 0, CELL_RELU = 1, CELL_LSTM = 2, CELL_GRU = 3 };
enum { W_F32 = 0, W_BF16 = 1, W_INT8 = 2 }; /* how the packed weights are stored */

typedef struct {
    int cell, L, wtype, threads; /* threads: how many may share a step's products (1: this one alone) */
    long n, H, G, V, rows; /* streams, hidden, pre-activation width, logits, table rows */
    const float *table;    /* (rows, G): layer 0's input pre-activation of every symbol */
    const void *w[MAX_LAYERS];
    long M[MAX_LAYERS]; /* columns of w[k]: G + the width above */
    const float *aux[MAX_LAYERS]; /* int8 weights: (2, M[k]), each column's scale, then its bias */
    float *h1[MAX_LAYERS], *c[MAX_LAYERS], *out[MAX_LAYERS];
    float *pre, *tmp; /* scratch: G and H floats */
    PyObject *keep;   /* the arrays above, kept alive while the net exists */
    Py_buffer views[5 * MAX_LAYERS + 3];
    int nviews;
} Net;

/* Every copy packs its weights in tiles of TW = 64 columns (rnnkit.fastsample.pack; _csample.TILE).
   Per copy: VW floats a vector; one stream keeps PAR1 x TW / VW accumulators, SBM streams at once
   SBM x NJM (within the 16 vector registers of AVX2 and SSE, or 32 of AVX-512). */
#define TW 64
#define SUFFIX _base
#define VW 4
#define PAR1 1
#define SBM 2
#define NJM 4
#include "_csample_kernels.h"
#undef SUFFIX
#undef VW
#undef PAR1
#undef SBM
#undef NJM

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86_COPIES 1
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SUFFIX _avx2
#define VW 8
#define PAR1 1
#define SBM 2
#define NJM 4
#include "_csample_kernels.h"
#undef SUFFIX
#undef VW
#undef PAR1
#undef SBM
#undef NJM
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")
#define SUFFIX _avx512
#define VW 16
#define PAR1 2
#define SBM 4
#define NJM 4
#include "_csample_kernels.h"
#undef SUFFIX
#undef VW
#undef PAR1
#undef SBM
#undef NJM
#pragma GCC pop_options
#endif

static void (*cells_impl)(Net *, int, const int64_t *) = cells_base;
static void (*product_impl)(Net *, int, long, long) = product_base;
static double (*fma_impl)(long) = fma_loop_base;
static const char *isa = "baseline";

/* -- threads sharing a step's products ------------------------------------------------------------

   A pool of worker threads, started when a net first asks for more than one thread. For each layer
   the caller publishes the product (a new generation), takes its own share of the column tiles, and
   waits for the workers' shares; a worker spins briefly for the next generation, then sleeps on a
   condition variable. One net uses the pool at a time (the others run alone meanwhile), and a
   forked child starts without it. */

#define MAX_WORKERS 7
static struct {
    pthread_mutex_t use;  /* held by the net whose step is using the pool */
    pthread_mutex_t wake; /* with `cv`: sleeping workers */
    pthread_cond_t cv;
    atomic_long generation;
    atomic_int pending; /* workers still computing the current generation's shares */
    int workers, parts;  /* started workers; shares of the current product */
    long born;           /* the generation while workers are being started */
    Net *net;
    int k;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, NULL, 0};

static long share(long tiles, int part, int parts) { return tiles * part / parts; }

static void *worker(void *arg) {
    const int id = (int)(intptr_t)arg; /* 1..workers; the caller's share is 0 */
    long seen = pool.born; /* the generation when it was started: the next one is its first job */
    for (;;) {
        for (int spin = 0; atomic_load_explicit(&pool.generation, memory_order_acquire) == seen; spin++) {
            if (spin < 4000) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&pool.wake);
            while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.cv, &pool.wake);
            pthread_mutex_unlock(&pool.wake);
        }
        seen = atomic_load(&pool.generation);
        if (id < pool.parts) {
            long tiles = (pool.net->M[pool.k] + TW - 1) / TW;
            product_impl(pool.net, pool.k, share(tiles, id, pool.parts), share(tiles, id + 1, pool.parts));
        }
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
    return NULL;
}

static void forget_pool(void) { /* in a forked child: the workers did not come along */
    pthread_mutex_init(&pool.use, NULL);
    pthread_mutex_init(&pool.wake, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pool.workers = 0;
}

/* Start workers up to `want` (at most MAX_WORKERS); returns how many there are. Caller holds `use`. */
static int grow_pool(int want) {
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, forget_pool);
        registered = 1;
    }
    want = want > MAX_WORKERS ? MAX_WORKERS : want;
    pool.born = atomic_load(&pool.generation); /* no product is published while `use` is held here */
    while (pool.workers < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool.workers + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.workers++;
    }
    return pool.workers;
}

/* One step of every stream: tokens (n,) -> the logits in out[L - 1][:, G:]. With `pooled`, the
   caller holds the pool and its workers share each layer's product. */
static void step_net(Net *net, const int64_t *tokens, int pooled) {
    for (int k = 0; k < net->L; k++) {
        cells_impl(net, k, tokens);
        long tiles = (net->M[k] + TW - 1) / TW;
        int parts = pooled ? net->threads : 1;
        parts = parts > pool.workers + 1 ? pool.workers + 1 : parts;
        parts = parts > tiles ? (int)tiles : parts;
        if (parts <= 1) {
            product_impl(net, k, 0, tiles);
            continue;
        }
        pool.net = net, pool.k = k, pool.parts = parts;
        atomic_store(&pool.pending, pool.workers);
        pthread_mutex_lock(&pool.wake);
        atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.wake);
        product_impl(net, k, 0, share(tiles, 1, parts));
        while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}

/* Take the pool for a net that wants threads (1 if taken: release it after); never waits for it. */
static int take_pool(Net *net) {
    if (net->threads <= 1 || pthread_mutex_trylock(&pool.use) != 0) return 0;
    if (grow_pool(net->threads - 1) < 1) {
        pthread_mutex_unlock(&pool.use);
        return 0;
    }
    return 1;
}

/* -- choosing the next token, as rnnkit.sample.choose ------------------------------------------ */

/* NumPy's pairwise summation of float64 (its np.sum), so that top-p's normalisation rounds alike. */
static double pairwise_sum(const double *a, long n) {
    if (n < 8) {
        double res = 0.;
        for (long i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        long i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    long n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* Indices 0..n-1 ordered by z descending, ties by index (NumPy's stable argsort of -z). */
static void order_desc(const double *z, long *idx, long *tmp, long n) {
    for (long i = 0; i < n; i++) idx[i] = i;
    for (long width = 1; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            long a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = z[idx[b]] > z[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof(long));
    }
}

typedef struct {
    int greedy, plain; /* plain: temperature 1, no top-k or top-p: nothing to filter */
    double temperature, top_p;
    long top_k;
    double *z, *p; /* scratch, V each */
    long *idx, *tmp;
} Chooser;

static long choose_one(Chooser *ch, const float *logits, long V, double u) {
    if (ch->greedy) { /* the first of the largest, as argmax */
        long best = 0;
        for (long j = 1; j < V; j++)
            if (logits[j] > logits[best]) best = j;
        return best;
    }
    double *z = ch->z;
    if (ch->plain) {
        for (long j = 0; j < V; j++) z[j] = (double)logits[j];
    } else {
        for (long j = 0; j < V; j++) z[j] = (double)logits[j] / ch->temperature;
        if (ch->top_k > 0 && ch->top_k < V) { /* below the k-th largest value: out */
            order_desc(z, ch->idx, ch->tmp, V);
            double kth = z[ch->idx[ch->top_k - 1]];
            for (long j = 0; j < V; j++)
                if (z[j] < kth) z[j] = -INFINITY;
        }
        if (ch->top_p < 1.0) { /* outside the nucleus: out (the most likely always stays) */
            double *p = ch->p;
            long *idx = ch->idx;
            order_desc(z, idx, ch->tmp, V);
            double top = z[idx[0]];
            for (long j = 0; j < V; j++) p[j] = exp(z[idx[j]] - top);
            double total = pairwise_sum(p, V), run = 0.;
            for (long j = 0; j < V; j++) p[j] /= total;
            for (long j = 0; j < V; j++) {
                run += p[j]; /* the mass strictly ahead of it is run - p[j] */
                if (run - p[j] >= ch->top_p) z[idx[j]] = -INFINITY;
            }
        }
    }
    double top = z[0];
    for (long j = 1; j < V; j++) top = z[j] > top ? z[j] : top;
    double acc = 0.;
    for (long j = 0; j < V; j++) { /* unnormalised CDF */
        acc += exp(z[j] - top);
        z[j] = acc;
    }
    double x = u * z[V - 1];
    long lo = 0, hi = V; /* the number of CDF entries <= x */
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (z[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo < V - 1 ? lo : V - 1;
}

/* -- the Python objects ---------------------------------------------------------------------- */

static const char *CAPSULE = "rnnkit._csample.Net";

static void net_free(PyObject *capsule) {
    Net *net = PyCapsule_GetPointer(capsule, CAPSULE);
    if (!net) return;
    for (int i = 0; i < net->nviews; i++) PyBuffer_Release(&net->views[i]);
    Py_XDECREF(net->keep);
    PyMem_Free(net);
}

/* A C-contiguous buffer of `itemsize` bytes per item, at least `items` long; its pointer. */
static void *view(Net *net, PyObject *obj, Py_ssize_t itemsize, Py_ssize_t items, int writable, const char *what) {
    Py_buffer *b = &net->views[net->nviews];
    if (PyObject_GetBuffer(obj, b, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    net->nviews++;
    if (b->itemsize != itemsize || b->len < items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes of items of %zd",
                     what, items, itemsize, b->len, b->itemsize);
        return NULL;
    }
    return b->buf;
}

static PyObject *make(PyObject *self, PyObject *args) {
    int cell, wtype, threads;
    long H, n;
    PyObject *table, *weights, *widths, *h1, *c, *out, *pre, *tmp, *aux;
    if (!PyArg_ParseTuple(args, "illOO!O!O!OO!OOiiO", &cell, &H, &n, &table, &PyList_Type, &weights, &PyList_Type,
                          &widths, &PyList_Type, &h1, &c, &PyList_Type, &out, &pre, &tmp, &wtype, &threads, &aux))
        return NULL;
    Py_ssize_t L = PyList_GET_SIZE(weights);
    if (L < 1 || L > MAX_LAYERS || PyList_GET_SIZE(h1) != L || PyList_GET_SIZE(out) != L ||
        PyList_GET_SIZE(widths) != L ||
        (cell == CELL_LSTM) != (c != Py_None) || (c != Py_None && (!PyList_Check(c) || PyList_GET_SIZE(c) != L)) ||
        cell < 0 || cell > 3 || H < 1 || n < 1 || wtype < W_F32 || wtype > W_INT8 ||
        (wtype == W_INT8) != (aux != Py_None) || (aux != Py_None && (!PyList_Check(aux) || PyList_GET_SIZE(aux) != L))) {
        PyErr_SetString(PyExc_ValueError, "inconsistent sampler layout");
        return NULL;
    }
    Net *net = PyMem_Calloc(1, sizeof(Net));
    if (!net) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(net, CAPSULE, net_free);
    if (!capsule) {
        PyMem_Free(net);
        return NULL;
    }
    net->cell = cell, net->L = (int)L, net->wtype = wtype, net->n = n, net->H = H;
    net->threads = threads < 1 ? 1 : threads > MAX_WORKERS + 1 ? MAX_WORKERS + 1 : threads;
    net->G = H * (cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1);
    net->keep = Py_BuildValue("(OOOOOOOO)", table, weights, h1, c, out, pre, tmp, aux);
    if (!net->keep) goto fail;
    if (!(net->table = view(net, table, 4, net->G, 0, "table"))) goto fail;
    net->rows = (long)(net->views[net->nviews - 1].len / (4 * net->G));
    for (Py_ssize_t k = 0; k < L; k++) {
        PyObject *w = PyList_GET_ITEM(weights, k);
        if (!PyLong_Check(PyList_GET_ITEM(widths, k))) {
            PyErr_SetString(PyExc_TypeError, "widths: one int per layer");
            goto fail;
        }
        net->M[k] = PyLong_AsLong(PyList_GET_ITEM(widths, k));
        if (net->M[k] <= net->G) {
            PyErr_SetString(PyExc_ValueError, "a weight matrix is too narrow");
            goto fail;
        }
        long tiles = (net->M[k] + TW - 1) / TW;
        const long rows = wtype == W_INT8 ? H : H + 1; /* int8: the biases travel in aux */
        if (!(net->w[k] = view(net, w, wtype == W_F32 ? 4 : wtype == W_BF16 ? 2 : 1, tiles * rows * TW, 0, "weights")))
            goto fail;
        if (aux != Py_None && !(net->aux[k] = view(net, PyList_GET_ITEM(aux, k), 4, 2 * net->M[k], 0, "scales")))
            goto fail;
        if (!(net->h1[k] = view(net, PyList_GET_ITEM(h1, k), 4, n * (H + 1), 1, "h1"))) goto fail;
        if (!(net->out[k] = view(net, PyList_GET_ITEM(out, k), 4, n * net->M[k], 1, "out"))) goto fail;
        if (c != Py_None && !(net->c[k] = view(net, PyList_GET_ITEM(c, k), 4, n * H, 1, "c"))) goto fail;
        if (k > 0 && net->M[k - 1] - net->G != net->G) {
            PyErr_SetString(PyExc_ValueError, "a layer's output does not match the next layer's input");
            goto fail;
        }
    }
    net->V = net->M[L - 1] - net->G;
    if (!(net->pre = view(net, pre, 4, net->G, 1, "pre"))) goto fail;
    if (!(net->tmp = view(net, tmp, 4, H, 1, "tmp"))) goto fail;
    return capsule;
fail:
    Py_DECREF(capsule);
    return NULL;
}

static Net *get_net(PyObject *capsule) { return PyCapsule_GetPointer(capsule, CAPSULE); }

static int check_tokens(Net *net, const int64_t *tokens) {
    for (long s = 0; s < net->n; s++)
        if (tokens[s] < 0 || tokens[s] >= net->rows) {
            PyErr_Format(PyExc_IndexError, "token %lld is outside the vocabulary of %ld", (long long)tokens[s],
                         net->rows);
            return 0;
        }
    return 1;
}

/* step(net, tokens): one step of every stream; the logits are in out[L - 1][:, G:]. */
static PyObject *step(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer tok;
    if (!PyArg_ParseTuple(args, "Oy*", &capsule, &tok)) return NULL;
    Net *net = get_net(capsule);
    PyObject *result = NULL;
    if (net && tok.len == (Py_ssize_t)(net->n * sizeof(int64_t)) && check_tokens(net, tok.buf)) {
        Py_BEGIN_ALLOW_THREADS
        int pooled = take_pool(net);
        step_net(net, tok.buf, pooled);
        if (pooled) pthread_mutex_unlock(&pool.use);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    } else if (net && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "one int64 token per stream");
    }
    PyBuffer_Release(&tok);
    return result;
}

/* run(net, last, uniforms, tokens, greedy, temperature, top_k, top_p, end, step_last) -> steps:
   choose each stream's token from `last` (n, V) float32 with uniforms[t] (T, n) float64, write it in
   tokens[t] (T, n) int64, step, and go on from the new logits; after the last of the T choices, step
   only if `step_last` (leaving the logits in `last` for the next call). With `end` >= 0, stop early
   once every stream has chosen `end`. Returns the number of steps chosen. */
static PyObject *run(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer last, uni, tok;
    int greedy, step_last;
    double temperature, top_p;
    long top_k, end;
    if (!PyArg_ParseTuple(args, "Ow*y*w*pdldlp", &capsule, &last, &uni, &tok, &greedy, &temperature, &top_k,
                          &top_p, &end, &step_last))
        return NULL;
    Net *net = get_net(capsule);
    PyObject *result = NULL;
    Chooser ch = {0};
    char *done = NULL;
    if (!net) goto out;
    const long n = net->n, V = net->V, G = net->G, Mtop = net->M[net->L - 1];
    const long T = (long)(uni.len / (n * sizeof(double)));
    if (last.len != (Py_ssize_t)(n * V * sizeof(float)) || uni.len != (Py_ssize_t)(T * n * sizeof(double)) ||
        tok.len != (Py_ssize_t)(T * n * sizeof(int64_t)) || T < 1 || temperature <= 0) {
        PyErr_SetString(PyExc_ValueError, "run: last (n, V) float32, uniforms and tokens (T, n), temperature > 0");
        goto out;
    }
    ch.greedy = greedy, ch.temperature = temperature, ch.top_k = top_k, ch.top_p = top_p;
    ch.plain = temperature == 1.0 && top_k == 0 && top_p >= 1.0;
    ch.z = PyMem_Malloc(V * sizeof(double)), ch.p = PyMem_Malloc(V * sizeof(double));
    ch.idx = PyMem_Malloc(V * sizeof(long)), ch.tmp = PyMem_Malloc(V * sizeof(long));
    done = PyMem_Calloc(n, 1);
    if (!ch.z || !ch.p || !ch.idx || !ch.tmp || !done) {
        PyErr_NoMemory();
        goto out;
    }
    float *lg = last.buf;
    const double *u = uni.buf;
    int64_t *tokens = tok.buf;
    long t = 0;
    Py_BEGIN_ALLOW_THREADS
    int pooled = take_pool(net);
    for (; t < T; t++) {
        int64_t *row = tokens + t * n;
        long ended = 0;
        for (long s = 0; s < n; s++) {
            const float *logits = t == 0 ? lg + s * V : net->out[net->L - 1] + s * Mtop + G;
            row[s] = choose_one(&ch, logits, V, u[t * n + s]);
            if (end >= 0 && row[s] == end) done[s] = 1;
            ended += done[s];
        }
        if (end >= 0 && ended == n) {
            t++;
            break;
        }
        if (t + 1 == T && !step_last) {
            t++;
            break;
        }
        step_net(net, row, pooled);
    }
    if (pooled) pthread_mutex_unlock(&pool.use);
    Py_END_ALLOW_THREADS
    if (t == T && step_last) { /* the logits the next call starts from */
        for (long s = 0; s < n; s++) memcpy(lg + s * V, net->out[net->L - 1] + s * Mtop + G, V * sizeof(float));
    }
    result = PyLong_FromLong(t);
out:
    PyMem_Free(ch.z), PyMem_Free(ch.p), PyMem_Free(ch.idx), PyMem_Free(ch.tmp), PyMem_Free(done);
    PyBuffer_Release(&last), PyBuffer_Release(&uni), PyBuffer_Release(&tok);
    return result;
}

/* fma_flops(iters) -> flops: the FMA probe on this copy's vector width, with the GIL released so that
   one Python thread per core measures them all at once. */
static PyObject *fma_flops(PyObject *self, PyObject *args) {
    long iters;
    if (!PyArg_ParseTuple(args, "l", &iters)) return NULL;
    double flops;
    Py_BEGIN_ALLOW_THREADS
    flops = fma_impl(iters);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(flops);
}

static PyMethodDef methods[] = {
    {"fma_flops", fma_flops, METH_VARARGS, "fma_flops(iters) -> float32 flops of register-only multiply-adds"},
    {"make", make, METH_VARARGS,
     "make(cell, H, n, table, packed weights, widths, h1, c, out, pre, tmp, wtype, threads, aux) -> net"},
    {"step", step, METH_VARARGS, "step(net, tokens): one step of every stream"},
    {"run", run, METH_VARARGS,
     "run(net, last, uniforms, tokens, greedy, temperature, top_k, top_p, end, step_last) -> steps"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_csample", "rnnkit's compiled sampling loop", -1, methods};

PyMODINIT_FUNC PyInit__csample(void) {
#ifdef HAVE_X86_COPIES
    /* RNNKIT_SAMPLER=avx2 or =baseline caps the copy (to measure an older CPU's code on a newer one) */
    const char *cap = getenv("RNNKIT_SAMPLER");
    int no512 = cap && (!strcmp(cap, "avx2") || !strcmp(cap, "baseline")), no256 = cap && !strcmp(cap, "baseline");
    __builtin_cpu_init();
    if (!no512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        cells_impl = cells_avx512, product_impl = product_avx512, fma_impl = fma_loop_avx512, isa = "avx512";
    else if (!no256 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cells_impl = cells_avx2, product_impl = product_avx2, fma_impl = fma_loop_avx2, isa = "avx2";
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddStringConstant(m, "ISA", isa) < 0 || PyModule_AddIntConstant(m, "TILE", TW) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
