// A prototype, not part of alamode: how much would a compiled helper save a cold run?
// bench_compiled_helper.py builds it and swaps it in two ways: for the local engine's
// spawn-and-wait and the store's seal, leaving everything else as it is; or, with
// run_publish, for a worker's whole per-task work (staging directory, spawn, wait, seal,
// journal line, rename, read-only) in one call without the interpreter lock. It only
// handles what that benchmark needs: a command with no timeout, files with plain ASCII
// names in the top folder of an output, no pause points, no orphan in the way.
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <spawn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <openssl/sha.h>

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static int open_log(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        char dir[4096]; snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = 0; mkdir(dir, 0755); }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    return fd;
}

static char **to_array(PyObject *seq) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    char **out = PyMem_Malloc(sizeof(char *) * (n + 1));
    for (Py_ssize_t i = 0; i < n; i++) out[i] = PyBytes_AS_STRING(PySequence_Fast_GET_ITEM(seq, i));
    out[n] = NULL;
    return out;
}

// Spawn, copy the output into the log (made only when written), wait, end the group; no
// interpreter lock held. Returns 0 and the wait status, or an errno.
static int run_command(const char *path, char **argv, char **envp, const char *log_path,
                       int *status) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    posix_spawn_file_actions_t fa; posix_spawnattr_t at; sigset_t def;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    sigemptyset(&def); sigaddset(&def, SIGPIPE); sigaddset(&def, SIGXFSZ);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa); posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (rc != 0) { close(fds[0]); return rc; }
    int pidfd = pidfd_open_(pid), log = -1;
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
    char buf[65536];
    int open_pipe = 1;
    for (;;) {
        if (poll(open_pipe ? p : p + 1, open_pipe ? 2 : 1, -1) < 0) { if (errno == EINTR) continue; break; }
        if (open_pipe && p[0].revents) {
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n > 0) {
                if (log < 0) log = open_log(log_path);
                if (log >= 0) (void)!write(log, buf, n);
            } else open_pipe = 0;
        }
        if (p[1].revents) break;
    }
    waitpid(pid, status, 0);
    kill(-pid, SIGKILL);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) {
        if (log < 0) log = open_log(log_path);
        if (log >= 0) (void)!write(log, buf, n);
    }
    close(fds[0]); close(pidfd);
    if (log >= 0) close(log);
    return 0;
}

// spawn_wait(path, argv, envp, log_path) -> wait status
static PyObject *spawn_wait(PyObject *self, PyObject *args) {
    const char *path, *log_path;
    PyObject *argv_o, *envp_o;
    if (!PyArg_ParseTuple(args, "yOOy", &path, &argv_o, &envp_o, &log_path)) return NULL;
    PyObject *argv_s = PySequence_Fast(argv_o, "argv"), *envp_s = PySequence_Fast(envp_o, "envp");
    char **argv = to_array(argv_s), **envp = to_array(envp_s);
    int status = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    err = run_command(path, argv, envp, log_path, &status);
    Py_END_ALLOW_THREADS
    PyMem_Free(argv); PyMem_Free(envp); Py_DECREF(argv_s); Py_DECREF(envp_s);
    if (err) { errno = err; return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path); }
    return PyLong_FromLong(status);
}

// seal(root) -> [(relative path, size, sha256 hex)]: every regular file hashed and made
// read-only (top level and one level of folders is enough for the prototype)
typedef struct { char name[512]; long size; char hex[65]; } entry_t;

static void hash_into(int dirfd, const char *name, entry_t *e) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st; fstat(fd, &st);
    SHA256_CTX c; SHA256_Init(&c);
    char buf[65536]; ssize_t n; long total = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) { SHA256_Update(&c, buf, n); total += n; }
    unsigned char md[32]; SHA256_Final(md, &c);
    for (int i = 0; i < 32; i++) sprintf(e->hex + 2 * i, "%02x", md[i]);
    e->size = total;
    fchmod(fd, st.st_mode & ~0222);
    close(fd);
}

static int seal_into(const char *root, entry_t *entries) {
    int count = 0;
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) && count < 256) {
        if (de->d_type == DT_REG) {
            snprintf(entries[count].name, 512, "%s", de->d_name);
            hash_into(dirfd(d), de->d_name, &entries[count]);
            count++;
        }
    }
    if (d) closedir(d);
    return count;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name);
}

static PyObject *entry_list(entry_t *entries, int count) {
    PyObject *out = PyList_New(count);
    for (int i = 0; i < count; i++)
        PyList_SET_ITEM(out, i, Py_BuildValue("(sls)", entries[i].name, entries[i].size, entries[i].hex));
    return out;
}

static PyObject *seal(PyObject *self, PyObject *args) {
    const char *root;
    if (!PyArg_ParseTuple(args, "y", &root)) return NULL;
    entry_t *entries = PyMem_Malloc(sizeof(entry_t) * 256);
    int count = 0;
    Py_BEGIN_ALLOW_THREADS
    count = seal_into(root, entries);
    Py_END_ALLOW_THREADS
    PyObject *out = entry_list(entries, count);
    PyMem_Free(entries);
    return out;
}

// run_publish(path, argv, envp, log_path, staging, target, journal_fd, output_id)
//   -> (wait status, [(name, size, sha256 hex)] or None when it failed)
// A worker's whole task: make the staging directory, run the command; on exit status 0 seal
// the files, append the journal line (as the store writes it), rename into place, make the
// output read-only. One call, no interpreter lock.
static PyObject *run_publish(PyObject *self, PyObject *args) {
    const char *path, *log_path, *staging, *target, *output_id;
    PyObject *argv_o, *envp_o;
    int journal;
    if (!PyArg_ParseTuple(args, "yOOyyyiy", &path, &argv_o, &envp_o, &log_path, &staging,
                          &target, &journal, &output_id))
        return NULL;
    PyObject *argv_s = PySequence_Fast(argv_o, "argv"), *envp_s = PySequence_Fast(envp_o, "envp");
    char **argv = to_array(argv_s), **envp = to_array(envp_s);
    entry_t *entries = PyMem_Malloc(sizeof(entry_t) * 256);
    int status = 0, err = 0, count = -1;
    Py_BEGIN_ALLOW_THREADS
    if (mkdir(staging, 0777) != 0) err = errno;
    if (!err) err = run_command(path, argv, envp, log_path, &status);
    if (!err && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        count = seal_into(staging, entries);
        qsort(entries, count, sizeof(entry_t), by_name);
        char line[8192];
        int n = snprintf(line, sizeof line, "{\"output\":\"%s\",\"files\":{", output_id);
        for (int i = 0; i < count; i++)
            n += snprintf(line + n, sizeof line - n, "%s\"%s\":[%ld,\"%s\"]", i ? "," : "",
                          entries[i].name, entries[i].size, entries[i].hex);
        n += snprintf(line + n, sizeof line - n, "}}\n");
        if (write(journal, line, n) != n) err = errno ? errno : EIO;
        if (!err && rename(staging, target) != 0) err = errno;
        struct stat st;
        if (!err && stat(target, &st) == 0) chmod(target, st.st_mode & ~0222);
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(argv); PyMem_Free(envp); Py_DECREF(argv_s); Py_DECREF(envp_s);
    if (err) {
        PyMem_Free(entries);
        errno = err;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, staging);
    }
    PyObject *files = count < 0 ? Py_NewRef(Py_None) : entry_list(entries, count);
    PyMem_Free(entries);
    return Py_BuildValue("(iN)", status, files);
}

static PyMethodDef methods[] = {
    {"spawn_wait", spawn_wait, METH_VARARGS, ""}, {"seal", seal, METH_VARARGS, ""},
    {"run_publish", run_publish, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrun", NULL, -1, methods};
PyMODINIT_FUNC PyInit__fastrun(void) { return PyModule_Create(&module); }
