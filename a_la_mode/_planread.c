/* Reading a plan file's bencode: what a_la_mode/planfile.py's _decode does with
   bdecode.Reader, compiled. Reading a plan is most of what `alamode validate` does, and a
   cold run's largest step before its first command (docs/benchmarks.md, ninth round).

   Optional, as _native.c is: where it cannot be built, or with ALAMODE_NATIVE=0, the Python
   reader does the same, and tests/test_planread.py holds the two equal, error for error.

   decode(data, corrupt) -> (top, fault, mismatch)
       ``data`` is a plan file's bytes; the caller checked that it starts with ``d``.
       ``top``: the decoded top dictionary (strings are UTF-8 text, integers ints).
       ``fault``: where the bytes are first not canonical bencode (unsorted or duplicate keys,
       an integer that bencode.py reads but we never write), or None.
       ``mismatch``: (task, computed) for the first task whose ``output`` is not the sha256
       of its entry's bytes less its ``output`` item, or None.
       Bytes that are not bencode raise ``corrupt`` (bdecode.Corrupt) with the reason the
       Python reader gives.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_sha256.h"

#define MAX_DEPTH 100 /* bdecode.MAX_DEPTH */
/* bdecode.py's reasons, word for word */
#define ENDS_EARLY "it ends before its last value does"
#define NOT_BENCODE "it is not valid bencode"
#define NOT_UTF8 "a string in it is not UTF-8 text"
#define TOO_DEEP "it nests lists and dictionaries deeper than 100 levels"
#define AFTER_END "it has bytes after its end"

/* Where a value is, for the fault: "the plan", "field 'tasks'", "field <key>", "task <name>".
   Made into text only when a fault is noted. */
typedef enum { IN_PLAN, IN_TASKS, IN_FIELD, IN_TASK } place_t;
typedef struct {
    place_t place;
    PyObject *name; /* the field's key or the task's name (borrowed) */
} where_t;

typedef struct {
    const char *data;
    Py_ssize_t size;
    PyObject *corrupt; /* the exception class for bytes that are not bencode */
    PyObject *fault;   /* the first non-canonical place, or NULL */
} reader_t;

static Py_ssize_t fail(reader_t *r, const char *reason) {
    PyErr_SetString(r->corrupt, reason);
    return -1;
}

static int at_end_mark(reader_t *r, Py_ssize_t pos) {
    return pos < r->size && r->data[pos] == 'e';
}

static int note(reader_t *r, where_t where) {
    if (r->fault != NULL) return 0;
    switch (where.place) {
    case IN_PLAN: r->fault = PyUnicode_FromString("the plan"); break;
    case IN_TASKS: r->fault = PyUnicode_FromString("field 'tasks'"); break;
    case IN_FIELD: r->fault = PyUnicode_FromFormat("field %R", where.name); break;
    case IN_TASK: r->fault = PyUnicode_FromFormat("task %R", where.name); break;
    }
    return r->fault == NULL ? -1 : 0;
}

/* A string's header at ``pos``: its length in digits without a leading zero, then ':'.
   Sets *start and returns the position after the string, or -1 (raised). */
static Py_ssize_t string_end(reader_t *r, Py_ssize_t pos, Py_ssize_t *start) {
    const char *d = r->data;
    Py_ssize_t p = pos, length = 0;
    int too_long = 0;
    if (p < r->size && d[p] == '0') {
        p++;
    } else if (p < r->size && d[p] >= '1' && d[p] <= '9') {
        for (; p < r->size && d[p] >= '0' && d[p] <= '9'; p++) {
            if (length > r->size) too_long = 1; /* longer than the data: stop counting */
            else length = length * 10 + (d[p] - '0');
        }
    } else {
        return fail(r, NOT_BENCODE);
    }
    if (p >= r->size || d[p] != ':') return fail(r, NOT_BENCODE);
    *start = p + 1;
    if (too_long || length > r->size - *start) return fail(r, ENDS_EARLY);
    return *start + length;
}

static PyObject *text(reader_t *r, Py_ssize_t start, Py_ssize_t end) {
    PyObject *value = PyUnicode_DecodeUTF8(r->data + start, end - start, "strict");
    if (value == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        fail(r, NOT_UTF8);
    }
    return value;
}

/* A dictionary key at ``pos``: it must sort after the previous key's bytes (``*previous``,
   ``*previous_size``; NULL for the first), or the dictionary is not canonical. */
static Py_ssize_t key(reader_t *r, Py_ssize_t pos, const char **previous,
                      Py_ssize_t *previous_size, where_t where, PyObject **out) {
    Py_ssize_t start, end = string_end(r, pos, &start);
    if (end < 0) return -1;
    Py_ssize_t size = end - start;
    if (*previous != NULL) {
        Py_ssize_t common = size < *previous_size ? size : *previous_size;
        int order = memcmp(r->data + start, *previous, (size_t)common);
        if ((order < 0 || (order == 0 && size <= *previous_size)) && note(r, where) < 0)
            return -1;
    }
    *previous = r->data + start;
    *previous_size = size;
    *out = text(r, start, end);
    return *out == NULL ? -1 : end;
}

static Py_ssize_t value(reader_t *r, Py_ssize_t pos, int depth, where_t where, PyObject **out);

static Py_ssize_t integer(reader_t *r, Py_ssize_t pos, where_t where, PyObject **out) {
    const char *digits = r->data + pos + 1;
    const char *stop = memchr(digits, 'e', (size_t)(r->size - pos - 1));
    if (stop == NULL) return fail(r, ENDS_EARLY);
    Py_ssize_t count = stop - digits;
    /* canonical: -?[1-9][0-9]*|0 */
    Py_ssize_t first = count > 0 && digits[0] == '-' ? 1 : 0;
    int canonical = count == 1 && digits[0] == '0';
    if (!canonical && count > first && digits[first] >= '1' && digits[first] <= '9') {
        canonical = 1;
        for (Py_ssize_t i = first + 1; i < count; i++)
            if (digits[i] < '0' || digits[i] > '9') canonical = 0;
    }
    if (canonical && count <= 18) {
        long long number = 0;
        for (Py_ssize_t i = first; i < count; i++) number = number * 10 + (digits[i] - '0');
        *out = PyLong_FromLongLong(first ? -number : number);
        return *out == NULL ? -1 : pos + 1 + count + 1;
    }
    /* Anything else as Python's int() reads it, with the Python reader's checks after. */
    PyObject *raw = PyBytes_FromStringAndSize(digits, count);
    if (raw == NULL) return -1;
    *out = PyObject_CallOneArg((PyObject *)&PyLong_Type, raw);
    Py_DECREF(raw);
    if (*out == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            fail(r, NOT_BENCODE);
        }
        return -1;
    }
    int leading_zero = (count > 0 && digits[0] == '0') || (count > 1 && digits[0] == '-' &&
                                                           digits[1] == '0');
    if (leading_zero && !(count == 1 && digits[0] == '0')) {
        Py_CLEAR(*out);
        return fail(r, NOT_BENCODE); /* leading zeros: never bencode */
    }
    if (!canonical && note(r, where) < 0) { /* a sign, spaces or underscores */
        Py_CLEAR(*out);
        return -1;
    }
    return pos + 1 + count + 1;
}

static Py_ssize_t dictionary(reader_t *r, Py_ssize_t pos, int depth, where_t where,
                             PyObject **out) {
    if (depth > MAX_DEPTH) return fail(r, TOO_DEEP);
    PyObject *result = PyDict_New();
    if (result == NULL) return -1;
    const char *previous = NULL;
    Py_ssize_t previous_size = 0;
    pos++;
    while (!at_end_mark(r, pos)) {
        PyObject *name = NULL, *item = NULL;
        pos = key(r, pos, &previous, &previous_size, where, &name);
        if (pos >= 0) pos = value(r, pos, depth + 1, where, &item);
        if (pos >= 0 && PyDict_SetItem(result, name, item) < 0) pos = -1;
        Py_XDECREF(name);
        Py_XDECREF(item);
        if (pos < 0) {
            Py_DECREF(result);
            return -1;
        }
    }
    *out = result;
    return pos + 1;
}

static Py_ssize_t list(reader_t *r, Py_ssize_t pos, int depth, where_t where, PyObject **out) {
    if (depth > MAX_DEPTH) return fail(r, TOO_DEEP);
    PyObject *result = PyList_New(0);
    if (result == NULL) return -1;
    pos++;
    while (!at_end_mark(r, pos)) {
        PyObject *item = NULL;
        pos = value(r, pos, depth + 1, where, &item);
        if (pos >= 0 && PyList_Append(result, item) < 0) pos = -1;
        Py_XDECREF(item);
        if (pos < 0) {
            Py_DECREF(result);
            return -1;
        }
    }
    *out = result;
    return pos + 1;
}

static Py_ssize_t value(reader_t *r, Py_ssize_t pos, int depth, where_t where, PyObject **out) {
    if (pos >= r->size) return fail(r, ENDS_EARLY);
    char kind = r->data[pos];
    if (kind >= '0' && kind <= '9') {
        Py_ssize_t start, end = string_end(r, pos, &start);
        if (end < 0) return -1;
        *out = text(r, start, end);
        return *out == NULL ? -1 : end;
    }
    if (kind == 'd') return dictionary(r, pos, depth, where, out);
    if (kind == 'l') return list(r, pos, depth, where, out);
    if (kind == 'i') return integer(r, pos, where, out);
    return fail(r, NOT_BENCODE);
}

/* sha256 of the entry's bytes less its output item, as hex, compared with its output. */
static int output_matches(reader_t *r, EVP_MD_CTX *context, Py_ssize_t start,
                          Py_ssize_t output_start, Py_ssize_t output_end, Py_ssize_t end,
                          PyObject *entry, PyObject **computed) {
    unsigned char digest[32];
    if (!EVP_DigestInit_ex(context, sha256, NULL) ||
        !EVP_DigestUpdate(context, r->data + start, (size_t)(output_start - start)) ||
        !EVP_DigestUpdate(context, r->data + output_end, (size_t)(end - output_end)) ||
        !EVP_DigestFinal_ex(context, digest, NULL)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's sha256 failed");
        return -1;
    }
    char hex[65];
    to_hex(digest, hex);
    PyObject *recorded = PyDict_GetItemString(entry, "output"); /* borrowed */
    if (recorded != NULL && PyUnicode_Check(recorded) &&
        PyUnicode_CompareWithASCIIString(recorded, hex) == 0)
        return 1;
    *computed = PyUnicode_FromStringAndSize(hex, 64);
    return *computed == NULL ? -1 : 0;
}

/* The ``tasks`` dictionary at ``pos``; the first task whose output does not match its entry
   goes in ``*mismatch``. */
static Py_ssize_t tasks(reader_t *r, Py_ssize_t pos, PyObject **out, PyObject **mismatch) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    PyObject *result = PyDict_New();
    if (context == NULL || result == NULL) {
        EVP_MD_CTX_free(context);
        Py_XDECREF(result);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    const char *previous = NULL;
    Py_ssize_t previous_size = 0;
    where_t in_tasks = {IN_TASKS, NULL};
    pos++;
    while (pos >= 0 && !at_end_mark(r, pos)) {
        PyObject *name = NULL, *entry = NULL;
        pos = key(r, pos, &previous, &previous_size, in_tasks, &name);
        where_t in_task = {IN_TASK, name};
        if (pos >= 0 && !(pos < r->size && r->data[pos] == 'd')) {
            pos = value(r, pos, 2, in_task, &entry); /* not an entry: the shape check says so */
        } else if (pos >= 0) {
            Py_ssize_t start = pos, output_start = pos, output_end = pos;
            const char *last = NULL;
            Py_ssize_t last_size = 0;
            entry = PyDict_New();
            pos = entry == NULL ? -1 : pos + 1;
            while (pos >= 0 && !at_end_mark(r, pos)) {
                Py_ssize_t item_start = pos;
                PyObject *field = NULL, *item = NULL;
                pos = key(r, pos, &last, &last_size, in_task, &field);
                if (pos >= 0) pos = value(r, pos, 3, in_task, &item);
                if (pos >= 0 && PyDict_SetItem(entry, field, item) < 0) pos = -1;
                if (pos >= 0 && PyUnicode_CompareWithASCIIString(field, "output") == 0) {
                    output_start = item_start;
                    output_end = pos;
                }
                Py_XDECREF(field);
                Py_XDECREF(item);
            }
            if (pos >= 0) pos++;
            if (pos >= 0 && *mismatch == Py_None) {
                PyObject *computed = NULL;
                int same = output_matches(r, context, start, output_start, output_end, pos,
                                          entry, &computed);
                if (same < 0) pos = -1;
                if (same == 0) {
                    Py_DECREF(*mismatch);
                    *mismatch = PyTuple_Pack(2, name, computed);
                    Py_DECREF(computed);
                    if (*mismatch == NULL) pos = -1;
                }
            }
        }
        if (pos >= 0 && PyDict_SetItem(result, name, entry) < 0) pos = -1;
        Py_XDECREF(name);
        Py_XDECREF(entry);
    }
    EVP_MD_CTX_free(context);
    if (pos < 0) {
        Py_DECREF(result);
        return -1;
    }
    *out = result;
    return pos + 1;
}

static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    PyObject *corrupt;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*O", &buffer, &corrupt)) return NULL;
    reader_t r = {buffer.buf, buffer.len, corrupt, NULL};
    PyObject *top = PyDict_New(), *mismatch = Py_NewRef(Py_None), *result = NULL;
    const char *previous = NULL;
    Py_ssize_t previous_size = 0, pos = top == NULL ? -1 : 1;
    while (pos >= 0 && !at_end_mark(&r, pos)) {
        PyObject *name = NULL, *item = NULL;
        where_t in_plan = {IN_PLAN, NULL};
        pos = key(&r, pos, &previous, &previous_size, in_plan, &name);
        if (pos >= 0 && PyUnicode_CompareWithASCIIString(name, "tasks") == 0 && pos < r.size &&
            r.data[pos] == 'd') {
            pos = tasks(&r, pos, &item, &mismatch);
        } else if (pos >= 0) {
            where_t in_field = {IN_FIELD, name};
            pos = value(&r, pos, 1, in_field, &item);
        }
        if (pos >= 0 && PyDict_SetItem(top, name, item) < 0) pos = -1;
        Py_XDECREF(name);
        Py_XDECREF(item);
    }
    if (pos >= 0 && pos + 1 != r.size) pos = fail(&r, AFTER_END);
    if (pos >= 0)
        result = Py_BuildValue("(OOO)", top, r.fault != NULL ? r.fault : Py_None, mismatch);
    Py_XDECREF(top);
    Py_XDECREF(r.fault);
    Py_XDECREF(mismatch); /* NULL when making it failed */
    PyBuffer_Release(&buffer);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Decode a plan file's bytes as planfile._decode does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "a_la_mode._planread",
    "Reading a plan file's bencode, compiled (see planfile._decode).", -1, methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__planread(void) {
    if (find_sha256() < 0) return NULL;
    return PyModule_Create(&module);
}
