/* The local engine's and the directory store's per-task work, without the interpreter lock.

   Optional: where this cannot be built (no C compiler or no OpenSSL headers), or with
   ALAMODE_NATIVE=0, engines/local.py and a_la_mode/localstore.py do the same in Python, and
   the tests of both run against both (docs/benchmarks.md, eighth round, says why it exists).

   run(path, argv, envp, log_path, timeout_ms, stop_fd) -> (wait status, timed out)
       Start ``path`` in a new session, standard input /dev/null, stdout and stderr into a
       pipe copied into ``log_path`` (created, with its folder, only when written to), other
       descriptors closed, SIGPIPE and SIGXFSZ at their defaults. Wait for it to exit, for
       ``timeout_ms`` (-1: no limit) or for ``stop_fd`` to become readable (the engine's
       stop_all); the last two end the whole process group: SIGTERM, then SIGKILL after
       GRACE_MS. Whatever the group left behind is killed. OSError when it cannot start.

   seal_and_place(staging, target, journal_fd, output_id, pause_before_rename, ready_path)
       -> (outcome, files)
       Hash every regular file below ``staging`` and take away every write permission below
       it (symbolic links are left out, as in Python's _seal), then, unless a path needs
       escaping in JSON (outcome NEEDS_PYTHON: the caller does the rest in Python), append
       the journal line the store writes, rename ``staging`` to ``target`` and make it
       read-only (PLACED). When something is in the way of the rename (an orphan's output),
       nothing is renamed (IN_THE_WAY) and the caller makes way. ``files``: (path, size,
       sha256) for each file. With ``pause_before_rename``, stops for a crash test first.
*/
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "_sha256.h"

#define GRACE_MS 3000
#define READ_SIZE 65536
#define PLACED 0
#define NEEDS_PYTHON 1
#define IN_THE_WAY 2

/* -- run ---------------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

typedef struct {
    const char *path;
    int fd;
} log_t;

/* The folders above ``path``, as os.makedirs(exist_ok=True) makes them. */
static void make_parents(const char *path) {
    char folder[4096];
    snprintf(folder, sizeof folder, "%s", path);
    for (char *slash = strchr(folder + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(folder, 0777);
        *slash = '/';
    }
}

static void log_write(log_t *log, const char *data, size_t size) {
    if (log->fd < 0) {
        log->fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log->fd < 0 && errno == ENOENT) {
            make_parents(log->path);
            log->fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        }
        if (log->fd < 0) return;
    }
    while (size > 0) {
        ssize_t n = write(log->fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        size -= (size_t)n;
    }
}

/* Copy what is in the pipe into the log; 0 once every writer has closed it. */
static int copy_out(int reader, log_t *log) {
    char buffer[READ_SIZE];
    ssize_t n = read(reader, buffer, sizeof buffer);
    if (n > 0) {
        log_write(log, buffer, (size_t)n);
        return 1;
    }
    return n < 0 && (errno == EINTR || errno == EAGAIN);
}

/* Wait up to ``ms`` for the leader to exit (the pidfd readable), copying output meanwhile. */
static int exits_within(int pidfd, int reader, int *reading, log_t *log, int ms) {
    long long deadline = now_ms() + ms;
    for (;;) {
        struct pollfd fds[2] = {{pidfd, POLLIN, 0}, {reader, POLLIN, 0}};
        int left = (int)(deadline - now_ms());
        if (left < 0) left = 0;
        int ready = poll(fds, *reading ? 2 : 1, left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return 0;
        if (*reading && fds[1].revents) *reading = copy_out(reader, log);
        if (fds[0].revents) return 1;
        if (ready == 0) return 0;
    }
}

static void end_group(pid_t pid, int pidfd, int reader, int *reading, log_t *log) {
    if (kill(-pid, SIGTERM) != 0) return;
    if (!exits_within(pidfd, reader, reading, log, GRACE_MS)) kill(-pid, SIGKILL);
}

static int run_command(const char *path, char *const argv[], char *const envp[],
                       const char *log_path, long long timeout_ms, int stop_fd, int *status,
                       int *timed_out) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return errno;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t defaults;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attributes);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    pid_t pid;
    int error = posix_spawn(&pid, path, &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    close(pipe_fds[1]);
    if (error != 0) {
        close(pipe_fds[0]);
        return error;
    }
    int reader = pipe_fds[0], reading = 1, pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    log_t log = {log_path, -1};
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    *timed_out = 0;
    for (;;) {
        struct pollfd fds[3] = {{pidfd, POLLIN, 0}, {stop_fd, POLLIN, 0}, {reader, POLLIN, 0}};
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            wait = left < 0 ? 0 : (int)left;
        }
        if (pidfd < 0 && (wait < 0 || wait > 50)) wait = 50; /* no pidfd: poll the pid */
        int ready = poll(fds, reading ? 3 : 2, wait);
        if (ready < 0 && errno != EINTR) break;
        if (ready > 0 && reading && fds[2].revents) reading = copy_out(reader, &log);
        if (ready > 0 && fds[0].revents) break;
        if (pidfd < 0 && waitpid(pid, status, WNOHANG) == pid) goto reaped;
        if (ready > 0 && fds[1].revents) { /* stop_all: Ctrl-C or a failure elsewhere */
            end_group(pid, pidfd, reader, &reading, &log);
            break;
        }
        if (deadline >= 0 && now_ms() >= deadline) {
            char message[128];
            int n = snprintf(message, sizeof message,
                             "\nalamode: timed out after %lld s; stopping it\n", timeout_ms / 1000);
            log_write(&log, message, (size_t)n);
            *timed_out = 1;
            end_group(pid, pidfd, reader, &reading, &log);
            break;
        }
    }
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
reaped:
    kill(-pid, SIGKILL); /* children the command left behind must not write into its output */
    fcntl(reader, F_SETFL, O_NONBLOCK); /* what the group wrote before it ended */
    char buffer[READ_SIZE];
    for (;;) {
        ssize_t n = read(reader, buffer, sizeof buffer);
        if (n > 0) log_write(&log, buffer, (size_t)n);
        else if (n < 0 && errno == EINTR) continue;
        else break;
    }
    close(reader);
    if (pidfd >= 0) close(pidfd);
    if (log.fd >= 0) close(log.fd);
    return 0;
}

static char **bytes_array(PyObject *sequence) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    char **array = PyMem_Malloc(sizeof(char *) * (size_t)(count + 1));
    if (array == NULL) return (char **)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(sequence, i);
        if (!PyBytes_Check(item)) {
            PyMem_Free(array);
            PyErr_SetString(PyExc_TypeError, "argv and envp hold bytes");
            return NULL;
        }
        array[i] = PyBytes_AS_STRING(item);
    }
    array[count] = NULL;
    return array;
}

static PyObject *run(PyObject *self, PyObject *args) {
    (void)self;
    const char *path, *log_path;
    PyObject *argv_object, *envp_object;
    long long timeout_ms;
    int stop_fd;
    if (!PyArg_ParseTuple(args, "yOOyLi", &path, &argv_object, &envp_object, &log_path,
                          &timeout_ms, &stop_fd))
        return NULL;
    PyObject *argv_list = PySequence_Fast(argv_object, "argv must be a sequence");
    if (argv_list == NULL) return NULL;
    PyObject *envp_list = PySequence_Fast(envp_object, "envp must be a sequence");
    if (envp_list == NULL) {
        Py_DECREF(argv_list);
        return NULL;
    }
    char **argv = bytes_array(argv_list), **envp = argv ? bytes_array(envp_list) : NULL;
    PyObject *result = NULL;
    if (argv != NULL && envp != NULL) {
        int status = 0, timed_out = 0, error;
        Py_BEGIN_ALLOW_THREADS
        error = run_command(path, argv, envp, log_path, timeout_ms, stop_fd, &status, &timed_out);
        Py_END_ALLOW_THREADS
        if (error != 0) {
            errno = error;
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
        } else {
            result = Py_BuildValue("(iO)", status, timed_out ? Py_True : Py_False);
        }
    }
    PyMem_Free(argv);
    PyMem_Free(envp);
    Py_DECREF(argv_list);
    Py_DECREF(envp_list);
    return result;
}

/* -- seal_and_place ------------------------------------------------------------------ */

typedef struct {
    char *path; /* relative to the output, '/'-separated */
    long long size;
    char digest[65];
} file_t;

typedef struct {
    file_t *files;
    size_t count, room;
    int plain; /* every path can go into JSON as it is */
} sealed_t;

static int read_only(int folder, const char *name, int flags) {
    struct stat status;
    if (fstatat(folder, name, &status, flags) != 0) return errno;
    if (fchmodat(folder, name, status.st_mode & ~0222, 0) != 0) return errno;
    return 0;
}

static int hash_file(int folder, const char *name, file_t *file) {
    int fd = openat(folder, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno;
    struct stat status;
    int error = fstat(fd, &status) != 0 ? errno : 0;
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (!error && (context == NULL || !EVP_DigestInit_ex(context, sha256, NULL)))
        error = ENOMEM;
    static __thread char buffer[READ_SIZE];
    long long total = 0;
    while (!error) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) error = errno;
        if (n <= 0) break;
        EVP_DigestUpdate(context, buffer, (size_t)n);
        total += n;
    }
    unsigned char digest[32];
    if (!error && !EVP_DigestFinal_ex(context, digest, NULL)) error = EIO;
    EVP_MD_CTX_free(context);
    if (!error && fchmod(fd, status.st_mode & ~0222) != 0) error = errno;
    close(fd);
    if (error) return error;
    to_hex(digest, file->digest);
    file->size = total;
    return 0;
}

static int plain_json(const char *text) {
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\') return 0;
    return 1;
}

static int seal_folder(int folder, const char *prefix, sealed_t *sealed) {
    int fd = dup(folder);
    if (fd < 0) return errno;
    DIR *listing = fdopendir(fd);
    if (listing == NULL) {
        close(fd);
        return errno;
    }
    int error = 0;
    struct dirent *entry;
    while (!error && (errno = 0, entry = readdir(listing)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        unsigned char type = entry->d_type;
        if (type == DT_UNKNOWN) {
            struct stat status;
            if (fstatat(folder, name, &status, AT_SYMLINK_NOFOLLOW) != 0) {
                error = errno;
                break;
            }
            type = S_ISLNK(status.st_mode)   ? DT_LNK
                   : S_ISDIR(status.st_mode) ? DT_DIR
                   : S_ISREG(status.st_mode) ? DT_REG
                                             : DT_FIFO;
        }
        if (type == DT_LNK) continue;
        size_t length = strlen(prefix) + strlen(name) + 2;
        char *path = malloc(length);
        if (path == NULL) {
            error = ENOMEM;
            break;
        }
        snprintf(path, length, "%s%s", prefix, name);
        if (type == DT_DIR) {
            int inner = openat(folder, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            if (inner < 0) {
                error = errno;
            } else {
                strcat(path, "/");
                error = seal_folder(inner, path, sealed);
                close(inner);
                if (!error) error = read_only(folder, name, AT_SYMLINK_NOFOLLOW);
            }
            free(path);
        } else if (type == DT_REG) {
            if (sealed->count == sealed->room) {
                size_t room = sealed->room ? 2 * sealed->room : 16;
                file_t *grown = realloc(sealed->files, room * sizeof(file_t));
                if (grown == NULL) {
                    free(path);
                    error = ENOMEM;
                    break;
                }
                sealed->files = grown;
                sealed->room = room;
            }
            file_t *file = &sealed->files[sealed->count];
            file->path = path;
            error = hash_file(folder, name, file);
            if (error) {
                free(path);
                break;
            }
            sealed->count++;
            if (!plain_json(path)) sealed->plain = 0;
        } else {
            free(path);
            error = read_only(folder, name, 0);
        }
    }
    if (!error && errno != 0 && entry == NULL) error = errno;
    closedir(listing);
    return error;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const file_t *)a)->path, ((const file_t *)b)->path);
}

/* The journal line, exactly as a_la_mode/localstore.py's _Journal.append writes it. */
static int append_journal(int journal_fd, const char *output_id, sealed_t *sealed) {
    /* each file: ,"PATH":[SIZE,"DIGEST"] is its path and at most 1+2+2+20+1+66+1 bytes */
    size_t room = 64 + strlen(output_id);
    for (size_t i = 0; i < sealed->count; i++) room += strlen(sealed->files[i].path) + 128;
    char *line = malloc(room);
    if (line == NULL) return ENOMEM;
    int written_now = snprintf(line, room, "{\"output\":\"%s\",\"files\":{", output_id);
    size_t n = written_now < 0 ? room : (size_t)written_now;
    for (size_t i = 0; i < sealed->count && n < room; i++) {
        file_t *file = &sealed->files[i];
        written_now = snprintf(line + n, room - n, "%s\"%s\":[%lld,\"%s\"]", i ? "," : "",
                               file->path, file->size, file->digest);
        n += written_now < 0 ? room : (size_t)written_now;
    }
    if (n < room) {
        written_now = snprintf(line + n, room - n, "}}\n");
        n += written_now < 0 ? room : (size_t)written_now;
    }
    if (n >= room) { /* cannot happen by the sizes above; never write a cut line */
        free(line);
        return EOVERFLOW;
    }
    int error = 0;
    ssize_t written = write(journal_fd, line, n);
    if (written < 0) error = errno;
    else if ((size_t)written != n) error = EIO;
    free(line);
    return error;
}

static void pause_for_crash_test(const char *ready_path) {
    if (ready_path != NULL && ready_path[0]) {
        int fd = open(ready_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
            (void)!write(fd, pid, (size_t)n);
            close(fd);
        }
    }
    for (;;) pause();
}

static int place(const char *staging, const char *target, int journal_fd, const char *output_id,
                 int pause_before_rename, const char *ready_path, sealed_t *sealed,
                 int *outcome) {
    int root = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return errno;
    int error = seal_folder(root, "", sealed);
    close(root);
    if (error) return error;
    qsort(sealed->files, sealed->count, sizeof(file_t), by_path);
    if (!sealed->plain) {
        *outcome = NEEDS_PYTHON;
        return 0;
    }
    if (journal_fd >= 0 && (error = append_journal(journal_fd, output_id, sealed)) != 0)
        return error;
    if (pause_before_rename) pause_for_crash_test(ready_path);
    if (rename(staging, target) != 0) {
        if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
            *outcome = IN_THE_WAY;
            return 0;
        }
        return errno;
    }
    *outcome = PLACED;
    return read_only(AT_FDCWD, target, 0);
}

static PyObject *seal_and_place(PyObject *self, PyObject *args) {
    (void)self;
    const char *staging, *target, *output_id, *ready_path;
    int journal_fd, pause_before_rename;
    if (!PyArg_ParseTuple(args, "yyiypz", &staging, &target, &journal_fd, &output_id,
                          &pause_before_rename, &ready_path))
        return NULL;
    sealed_t sealed = {NULL, 0, 0, 1};
    int outcome = PLACED, error;
    Py_BEGIN_ALLOW_THREADS
    error = place(staging, target, journal_fd, output_id, pause_before_rename, ready_path,
                  &sealed, &outcome);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (error) {
        errno = error;
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, staging);
    } else {
        PyObject *files = PyList_New((Py_ssize_t)sealed.count);
        for (size_t i = 0; files != NULL && i < sealed.count; i++) {
            file_t *file = &sealed.files[i];
            PyObject *item = Py_BuildValue("(OLs)", Py_None, file->size, file->digest);
            PyObject *path = item ? PyUnicode_DecodeFSDefault(file->path) : NULL;
            if (path == NULL) {
                Py_XDECREF(item);
                Py_CLEAR(files);
                break;
            }
            PyTuple_SetItem(item, 0, path); /* steals path, replaces None */
            PyList_SET_ITEM(files, (Py_ssize_t)i, item);
        }
        if (files != NULL) result = Py_BuildValue("(iN)", outcome, files);
    }
    for (size_t i = 0; i < sealed.count; i++) free(sealed.files[i].path);
    free(sealed.files);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "Run a command as the local engine does (see the module)."},
    {"seal_and_place", seal_and_place, METH_VARARGS,
     "Seal an output and put it in place as the directory store does (see the module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "a_la_mode._native",
    "The local engine's and the directory store's per-task work without the interpreter lock.",
    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) {
    if (find_sha256() < 0) return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) return NULL;
    if (PyModule_AddIntConstant(created, "PLACED", PLACED) < 0 ||
        PyModule_AddIntConstant(created, "NEEDS_PYTHON", NEEDS_PYTHON) < 0 ||
        PyModule_AddIntConstant(created, "IN_THE_WAY", IN_THE_WAY) < 0 ||
        PyModule_AddIntConstant(created, "GRACE_MS", GRACE_MS) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
