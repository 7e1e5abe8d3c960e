/* Compiled reader of flat Avro records for the worker's hot loop (schemas/fast_decode.py decides when it is used).

   read_all(kinds, batch, pos, data) -> list of tuples (the records of a whole message body)

   `kinds` has one byte per field, in schema order: 'l' long, 'd' double, 's' string, 'n' ["null", "string"],
   'm' map of strings; 'S' and 'N' are 's' and 'n' for fields whose values repeat (read_shared_string). `batch`:
   the body is an array of such records (blocks of a positive count, ended by 0). Each record comes back as the
   tuple of its field values.

   It reads exactly what the generated Python decoder (fast_decode.py) reads and gives up - raises GiveUp - where it
   gives up: a truncated body, a negative length or block count, a varint past 64 bits, a union index other than 0
   or 1 in one byte, invalid UTF-8. The caller then lets fastavro decide (the same events, or the same error).
   tests/unit/test_fast_decode.py holds both to fastavro. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *GiveUp;

typedef struct {
    const unsigned char *p;
    Py_ssize_t pos, end;
} Reader;

/* A zigzag varint of up to 64 bits (10 bytes), as fast_decode._long: -1 after raising GiveUp. */
static int read_long(Reader *r, int64_t *out) {
    uint64_t n = 0;
    int shift = 0;
    unsigned char b;
    do {
        if (shift > 63 || r->pos >= r->end) {
            PyErr_SetNone(GiveUp);
            return -1;
        }
        b = r->p[r->pos++];
        uint64_t bits = (uint64_t)(b & 0x7F);
        if (shift > 57 && (bits >> (64 - shift)) != 0) { /* n >> 64 would be non-zero */
            PyErr_SetNone(GiveUp);
            return -1;
        }
        n |= bits << shift;
        shift += 7;
    } while (b & 0x80);
    *out = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
    return 0;
}

/* A string's byte length, checked against what is left of the body: -1 after raising GiveUp. */
static int read_length(Reader *r, int64_t *n) {
    if (read_long(r, n) < 0)
        return -1;
    if (*n < 0 || *n > r->end - r->pos) {
        PyErr_SetNone(GiveUp);
        return -1;
    }
    return 0;
}

/* The next `n` bytes as a str (strict UTF-8, else GiveUp). */
static PyObject *decode_string(Reader *r, int64_t n) {
    PyObject *s = PyUnicode_DecodeUTF8((const char *)r->p + r->pos, (Py_ssize_t)n, "strict");
    if (s == NULL) {
        PyErr_Clear();
        PyErr_SetNone(GiveUp);
        return NULL;
    }
    r->pos += (Py_ssize_t)n;
    return s;
}

static PyObject *read_string(Reader *r) {
    int64_t n;
    if (read_length(r, &n) < 0)
        return NULL;
    return decode_string(r, n);
}

/* Fields whose values repeat from event to event (kinds 'S' and 'N': tags, provider, model...) share one str object
   per value: a direct-mapped table of recent short ASCII strings, looked up by content. The decoder allocates and
   decodes nothing for a value it has seen, and everything downstream that hashes, compares, counts or frees these
   values (the rows' LowCardinality dictionaries, the row tuples' deallocation) touches one object instead of one
   per event. The value is the same str either way; anything else (non-ASCII, longer) is decoded as read_string
   does. The table lives while the module does (at most SHARED_SLOTS strings of SHARED_MAX_LEN characters). */
#define SHARED_SLOTS 4096
#define SHARED_MAX_LEN 64
static PyObject *shared[SHARED_SLOTS];

static PyObject *read_shared_string(Reader *r) {
    int64_t n;
    if (read_length(r, &n) < 0)
        return NULL;
    if (n > SHARED_MAX_LEN)
        return decode_string(r, n);
    const unsigned char *p = r->p + r->pos;
    uint32_t h = 2166136261u ^ (uint32_t)n;
    unsigned char high = 0;
    for (int64_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
        high |= p[i];
    }
    if (high & 0x80) /* not ASCII: decoded (and judged) as any string */
        return decode_string(r, n);
    PyObject **slot = &shared[h & (SHARED_SLOTS - 1)];
    PyObject *s = *slot;
    if (s != NULL && PyUnicode_GET_LENGTH(s) == (Py_ssize_t)n && memcmp(PyUnicode_1BYTE_DATA(s), p, (size_t)n) == 0) {
        r->pos += (Py_ssize_t)n;
        return Py_NewRef(s);
    }
    s = PyUnicode_New((Py_ssize_t)n, 127);
    if (s == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    PyObject *old = *slot;
    *slot = Py_NewRef(s);
    Py_XDECREF(old);
    r->pos += (Py_ssize_t)n;
    return s;
}

static PyObject *read_map(Reader *r) {
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (;;) {
        int64_t count;
        if (read_long(r, &count) < 0)
            goto fail;
        if (count == 0)
            return out;
        if (count < 0) { /* a block with a byte size: legal Avro, rare; fastavro reads it */
            PyErr_SetNone(GiveUp);
            goto fail;
        }
        for (int64_t i = 0; i < count; i++) {
            PyObject *k = read_string(r);
            if (k == NULL)
                goto fail;
            PyObject *v = read_string(r);
            if (v == NULL) {
                Py_DECREF(k);
                goto fail;
            }
            int rc = PyDict_SetItem(out, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0)
                goto fail;
        }
    }
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *read_record(Reader *r, const char *kinds, Py_ssize_t nfields) {
    PyObject *t = PyTuple_New(nfields);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nfields; i++) {
        PyObject *v = NULL;
        switch (kinds[i]) {
        case 'l': {
            int64_t x;
            if (read_long(r, &x) == 0)
                v = PyLong_FromLongLong(x);
            break;
        }
        case 'd': {
            if (r->end - r->pos < 8) {
                PyErr_SetNone(GiveUp);
                break;
            }
            v = PyFloat_FromDouble(PyFloat_Unpack8((const char *)r->p + r->pos, 1));
            r->pos += 8;
            break;
        }
        case 's':
            v = read_string(r);
            break;
        case 'S':
            v = read_shared_string(r);
            break;
        case 'n':
        case 'N': {
            if (r->pos >= r->end) {
                PyErr_SetNone(GiveUp);
                break;
            }
            unsigned char b = r->p[r->pos++];
            if (b == 0) {
                v = Py_NewRef(Py_None);
            } else if (b == 2) {
                v = kinds[i] == 'N' ? read_shared_string(r) : read_string(r);
            } else {
                PyErr_SetNone(GiveUp);
            }
            break;
        }
        case 'm':
            v = read_map(r);
            break;
        default:
            PyErr_Format(PyExc_ValueError, "unknown field kind %c", kinds[i]);
        }
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* read_all(kinds, batch, pos, data) -> list: the records of a whole message body from `pos`, giving up unless they
   end exactly at its end. Arguments in this order so functools.partial binds all but the message. */
static PyObject *records_read_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "read_all(kinds, batch, pos, data)");
        return NULL;
    }
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "kinds and data must be bytes");
        return NULL;
    }
    int batch = PyObject_IsTrue(args[1]);
    if (batch < 0)
        return NULL;
    Py_ssize_t pos = PyLong_AsSsize_t(args[2]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    Reader r = {(const unsigned char *)PyBytes_AS_STRING(args[3]), pos, PyBytes_GET_SIZE(args[3])};
    if (pos < 0 || pos > r.end) {
        PyErr_SetNone(GiveUp);
        return NULL;
    }
    const char *kinds = PyBytes_AS_STRING(args[0]);
    Py_ssize_t nfields = PyBytes_GET_SIZE(args[0]);
    PyObject *events = PyList_New(0);
    if (events == NULL)
        return NULL;
    int64_t count = 1; /* one record, or blocks of `count` records ended by a 0 count */
    for (;;) {
        if (batch) {
            if (read_long(&r, &count) < 0)
                goto fail;
            if (count == 0)
                break;
            if (count < 0) {
                PyErr_SetNone(GiveUp);
                goto fail;
            }
        }
        for (int64_t i = 0; i < count; i++) {
            PyObject *t = read_record(&r, kinds, nfields);
            if (t == NULL)
                goto fail;
            int rc = PyList_Append(events, t);
            Py_DECREF(t);
            if (rc < 0)
                goto fail;
        }
        if (!batch)
            break;
    }
    if (r.pos != r.end) { /* trailing bytes: not a message of this schema */
        PyErr_SetNone(GiveUp);
        goto fail;
    }
    return events;
fail:
    Py_DECREF(events);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_all", (PyCFunction)(void (*)(void))records_read_all, METH_FASTCALL,
     "read_all(kinds, batch, pos, data) -> records of the whole body; raises GiveUp on anything unusual."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_avro_records",
                                    "Compiled reader of flat Avro records (see schemas/fast_decode.py).", -1, methods};

PyMODINIT_FUNC PyInit__avro_records(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    GiveUp = PyErr_NewException("schemas._avro_records.GiveUp", NULL, NULL);
    if (GiveUp == NULL || PyModule_AddObjectRef(m, "GiveUp", GiveUp) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
