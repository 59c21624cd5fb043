/*
 * Bounding boxes of the connected components of every level set of an 8-bit map, in two sweeps.
 *
 * MaxBoxAccV2 thresholds a 224x224 uint8 map at up to 256 levels and takes a box from every contour
 * OpenCV finds (RETR_TREE). Those contours are of two kinds, and their boxes follow from components:
 *   - outer borders: one per 8-connected component of the foreground {map > level};
 *   - hole borders: one per 4-connected component of the background {map <= level} that does not
 *     touch the image border; the border is traced on the foreground pixels 4-adjacent to the hole,
 *     so its box is the hole's box grown by one pixel (the Python side applies that, and the
 *     reference's box convention).
 * Thresholding once per level and labelling each mask costs O(levels * pixels): wsolevaluation's loop.
 * Here the map is quantised to the levels asked for (q = how many levels lie below a value, so the
 * foreground of level i is {q > i}) and the pixels are sorted by q (counting sort). A union-find sweep in
 * decreasing q adds the pixels one bucket at a time (a max-tree of the foreground): after bucket j the
 * live components are those of level j - 1, and each keeps its box. A sweep in increasing q does the
 * same for the background (a min-tree) and keeps the components that do not touch the border. Cost:
 * O(pixels + boxes), whatever the number of levels. Active neighbours that touch each other are already
 * in one component, so each pixel looks up one root per group of touching neighbours (a table over the
 * 256 neighbour masks), not one per neighbour.
 *
 * level_set_boxes(image, height, width, levels) -> bytes
 *   image:  bytes-like, height * width uint8, row-major.
 *   levels: bytes-like int32, strictly increasing, each in [-1, 254]: foreground is image > level.
 *   Returns int32 rows (level_index, kind, x_min, y_min, x_max, y_max) as bytes; kind 0 is a foreground
 *   component, 1 a hole; coordinates are the inclusive pixel box of the component.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROW 6
#define INACTIVE INT32_MIN

#ifdef _MSC_VER
#include <intrin.h>
static inline int lowest_bit(uint32_t x) { unsigned long i; _BitScanForward(&i, x); return (int)i; }
#else
static inline int lowest_bit(uint32_t x) { return __builtin_ctz(x); }
#endif

/* A component: inclusive box, size in pixels, place in the list of live components, border flag. */
typedef struct {
    int32_t x0, y0, x1, y1, size, slot, touches_border, unused;
} Component;

/* Union-find over a padded grid ((height + 2) x (width + 2); the frame is never active, so neighbours
   need no bounds checks). parent[p] is INACTIVE, another pixel, or -(id + 1) at a root, id indexing
   the small `comp` array: the per-pixel state is 4 bytes and stays in cache. */
typedef struct {
    int32_t *parent, *live; /* live: ids of the current components */
    Component *comp;
    int32_t num_live, num_comp, stride, height, width;
} Forest;

static inline int32_t find(int32_t *parent, int32_t p) {
    while (parent[p] >= 0) {
        int32_t up = parent[p];
        if (parent[up] >= 0) parent[p] = parent[up]; /* path halving */
        p = up;
    }
    return p;
}

/* Merge the components rooted at pixels a and b (union by size); returns the surviving root. */
static inline int32_t merge(Forest *f, int32_t a, int32_t b) {
    Component *ca = &f->comp[-f->parent[a] - 1], *cb = &f->comp[-f->parent[b] - 1];
    if (ca->size < cb->size) { Component *t = ca; ca = cb; cb = t; int32_t u = a; a = b; b = u; }
    f->parent[b] = a;
    ca->size += cb->size;
    if (cb->x0 < ca->x0) ca->x0 = cb->x0;
    if (cb->x1 > ca->x1) ca->x1 = cb->x1;
    if (cb->y0 < ca->y0) ca->y0 = cb->y0;
    if (cb->y1 > ca->y1) ca->y1 = cb->y1;
    ca->touches_border |= cb->touches_border;
    int32_t last = f->live[--f->num_live]; /* b's component leaves the live list */
    f->live[cb->slot] = last;
    f->comp[last].slot = cb->slot;
    return a;
}

/* The 8 neighbours as a ring, bit k of a mask: N, NE, E, SE, S, SW, W, NW. Active neighbours that touch
   each other are already in one component, so a pixel only needs one find per group of touching
   active neighbours. GROUPS8[m] / GROUPS4[m] hold one representative bit per group for the ring mask
   m (8-connectivity; 4-connectivity, where only N, E, S, W count and two of them touch through an
   active diagonal pixel between them). Built once at import. */
static uint8_t GROUPS8[256], GROUPS4[256];

static void build_groups(void) {
    for (int m = 0; m < 256; m++) {
        for (int eight = 0; eight < 2; eight++) {
            int label[8];
            for (int k = 0; k < 8; k++) label[k] = k;
            for (int pass = 0; pass < 8; pass++) /* tiny label propagation to a fixed point */
                for (int k = 0; k < 8; k++) {
                    int links[3] = {-1, -1, -1};
                    if (eight) {
                        links[0] = (k + 1) % 8;                     /* ring neighbours touch */
                        if (k % 2 == 0) links[1] = (k + 2) % 8;     /* N-E, E-S, ...: diagonal contact */
                    } else if (k % 2 == 0 && (m >> ((k + 1) % 8) & 1)) {
                        links[0] = (k + 2) % 8;                     /* N-E through an active NE, ... */
                    }
                    for (int l = 0; l < 3; l++) {
                        int j = links[l];
                        if (j < 0 || !(m >> k & 1) || !(m >> j & 1)) continue;
                        int lo = label[k] < label[j] ? label[k] : label[j];
                        label[k] = label[j] = lo;
                    }
                }
            uint8_t reps = 0;
            for (int k = 0; k < 8; k++)
                if ((m >> k & 1) && (eight || k % 2 == 0) && label[k] == k) reps |= (uint8_t)(1u << k);
            if (eight) GROUPS8[m] = reps; else GROUPS4[m] = reps;
        }
    }
}

/* Add the pixel at packed (y << 16 | x): join the components of its active neighbours (8-connected
   for the foreground, 4-connected for the background), or start a new component. */
static inline void add_pixel(Forest *f, int32_t *parent, int32_t packed, const int32_t *ring, int32_t stride,
                             uint32_t last_x, uint32_t last_y, const uint8_t *groups) {
    int32_t y = packed >> 16, x = packed & 0xFFFF;
    int32_t p = (y + 1) * stride + (x + 1), root = -1;
    uint32_t mask = 0;
    for (int k = 0; k < 8; k++) mask |= (uint32_t)(parent[p + ring[k]] != INACTIVE) << k;
    uint32_t reps = groups[mask];
    while (reps) {
        int k = lowest_bit(reps);
        reps &= reps - 1;
        int32_t r = find(parent, p + ring[k]);
        if (root < 0) root = r;
        else if (r != root) root = merge(f, root, r);
    }
    /* x == 0 or x == width - 1 (and the same for y), with one unsigned comparison each */
    int32_t border = ((uint32_t)x - 1u >= last_x - 1u) | ((uint32_t)y - 1u >= last_y - 1u);
    if (root < 0) { /* a new component */
        int32_t id = f->num_comp++;
        Component *c = &f->comp[id];
        c->x0 = c->x1 = x;
        c->y0 = c->y1 = y;
        c->size = 1;
        c->touches_border = border;
        c->slot = f->num_live;
        f->live[f->num_live++] = id;
        parent[p] = -id - 1;
    } else {
        Component *c = &f->comp[-parent[root] - 1];
        if (x < c->x0) c->x0 = x;
        if (x > c->x1) c->x1 = x;
        if (y < c->y0) c->y0 = y;
        if (y > c->y1) c->y1 = y;
        c->size += 1;
        c->touches_border |= border;
        parent[p] = root;
    }
}

/* Add the pixels order[begin .. end). */
static void add_pixels(Forest *f, const int32_t *order, int32_t begin, int32_t end, int eight) {
    int32_t *parent = f->parent, s = f->stride;
    const int32_t ring[8] = {-s, -s + 1, 1, s + 1, s, s - 1, -1, -s - 1};
    uint32_t last_x = (uint32_t)f->width - 1u, last_y = (uint32_t)f->height - 1u;
    const uint8_t *groups = eight ? GROUPS8 : GROUPS4;
    for (int32_t i = begin; i < end; i++) add_pixel(f, parent, order[i], ring, s, last_x, last_y, groups);
}

/* Rows of (level_index, kind, x_min, y_min, x_max, y_max), in a buffer that doubles when full. */
typedef struct {
    int32_t *rows;
    Py_ssize_t count, capacity;
} Rows;

/* Append a row per live component (per one not touching the border when holes_only) for level li;
   returns 0, or -1 when out of memory. */
static int emit(const Forest *f, int32_t li, int kind, int holes_only, Rows *out) {
    for (int32_t i = 0; i < f->num_live; i++) {
        const Component *c = &f->comp[f->live[i]];
        if (holes_only && c->touches_border) continue;
        if (out->count == out->capacity) {
            Py_ssize_t capacity = 2 * out->capacity + 256;
            int32_t *rows = realloc(out->rows, capacity * ROW * sizeof(int32_t));
            if (!rows) return -1;
            out->rows = rows;
            out->capacity = capacity;
        }
        int32_t *row = out->rows + ROW * out->count++;
        row[0] = li; row[1] = kind;
        row[2] = c->x0; row[3] = c->y0; row[4] = c->x1; row[5] = c->y1;
    }
    return 0;
}

static void reset(Forest *f, Py_ssize_t padded) {
    for (Py_ssize_t i = 0; i < padded; i++) f->parent[i] = INACTIVE;
    f->num_live = f->num_comp = 0;
}

/* The whole computation, without the GIL: fills `out`; returns 0, or -1 when out of memory. */
static int level_set_boxes_core(const uint8_t *value, int32_t height, int32_t width, const int32_t *level,
                                int32_t num_levels, Rows *out) {
    Py_ssize_t n = (Py_ssize_t)height * width, padded = (Py_ssize_t)(height + 2) * (width + 2);
    int failed = 0;
    int32_t *order = malloc(n * sizeof(int32_t)), *parent = malloc(padded * sizeof(int32_t));
    int32_t *live = malloc(n * sizeof(int32_t));
    Component *comp = malloc(n * sizeof(Component));
    if (!order || !parent || !live || !comp) {
        free(order); free(parent); free(live); free(comp);
        return -1;
    }
    Forest f = {.parent = parent, .live = live, .comp = comp, .stride = width + 2, .height = height, .width = width};
    int32_t num_q = num_levels + 1;

    /* Quantise: q = how many levels lie below the value, so image > level[i] <=> q > i. */
    int32_t quant[256];
    for (int v = 0, i = 0; v < 256; v++) {
        while (i < num_levels && level[i] < v) i++;
        quant[v] = i;
    }
    /* Counting sort of the pixels by q, as packed (y << 16 | x): bucket j is order[start[j] .. start[j + 1]). */
    int32_t start[258] = {0}, fill[257];
    for (Py_ssize_t p = 0; p < n; p++) start[quant[value[p]] + 1]++;
    for (int32_t j = 0; j < num_q; j++) start[j + 1] += start[j];
    memcpy(fill, start, sizeof(fill));
    for (int32_t y = 0, p = 0; y < height; y++)
        for (int32_t x = 0; x < width; x++, p++) order[fill[quant[value[p]]]++] = (y << 16) | x;

    /* Foreground (8-connected), q descending: after bucket j the active set is {q > j - 1}, the
       foreground of level j - 1. */
    reset(&f, padded);
    for (int32_t j = num_q - 1; j >= 1; j--) {
        add_pixels(&f, order, start[j], start[j + 1], 1);
        failed |= emit(&f, j - 1, 0, 0, out);
    }
    /* Holes (4-connected background not touching the border), q ascending: after bucket j the active
       set is {q <= j}, the background of level j. */
    reset(&f, padded);
    for (int32_t j = 0; j < num_q - 1; j++) {
        add_pixels(&f, order, start[j], start[j + 1], 0);
        failed |= emit(&f, j, 1, 1, out);
    }
    free(order); free(parent); free(live); free(comp);
    return failed ? -1 : 0;
}

static PyObject *level_set_boxes(PyObject *self, PyObject *args) {
    Py_buffer image, levels;
    Py_ssize_t height, width;
    if (!PyArg_ParseTuple(args, "y*nny*", &image, &height, &width, &levels)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t num_levels = levels.len / (Py_ssize_t)sizeof(int32_t);
    const int32_t *level = (const int32_t *)levels.buf;
    if (height <= 0 || width <= 0 || height > 32767 || width > 32767 || image.len != height * width) {
        PyErr_SetString(PyExc_ValueError, "image must hold height * width bytes (sides of at most 32767)");
        goto done;
    }
    if (levels.len % (Py_ssize_t)sizeof(int32_t) != 0) {
        PyErr_SetString(PyExc_ValueError, "levels must be a buffer of int32 values");
        goto done;
    }
    for (Py_ssize_t i = 0; i < num_levels; i++) {
        if (level[i] < -1 || level[i] > 254 || (i > 0 && level[i] <= level[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "levels must be strictly increasing int32 values in [-1, 254]");
            goto done;
        }
    }
    Rows out = {NULL, 0, 0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = level_set_boxes_core(image.buf, (int32_t)height, (int32_t)width, level, (int32_t)num_levels, &out);
    Py_END_ALLOW_THREADS
    if (status < 0)
        PyErr_NoMemory();
    else
        result = PyBytes_FromStringAndSize((const char *)out.rows, out.count * ROW * (Py_ssize_t)sizeof(int32_t));
    free(out.rows);
done:
    PyBuffer_Release(&image);
    PyBuffer_Release(&levels);
    return result;
}

static PyMethodDef methods[] = {
    {"level_set_boxes", level_set_boxes, METH_VARARGS,
     "level_set_boxes(image, height, width, levels) -> bytes: component boxes of every level set."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_level_sets", NULL, -1, methods};

PyMODINIT_FUNC PyInit__level_sets(void) {
    build_groups();
    return PyModule_Create(&module);
}
