/* Whole-file reads, atomic writes (temp file + fsync + rename + directory
 * fsync) and the early writable-directory check; see dmvjnd/fileio.h. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "dmvjnd/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dmvjnd/core.h"
#include "dmvjnd/tensor.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

/* Distinguishes temp/probe files of threads of one process. */
static atomic_uint name_counter;

int dj_read_file(const char *path, size_t max_bytes, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    if (!path) return dj_error(DJ_EINVAL, "dj_read_file: NULL path");
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return dj_error(DJ_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dj_error(DJ_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    /* Directories, FIFOs and devices have no meaningful size to check. */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dj_error(DJ_EIO, "%s: not a regular file", path);
    }
    /* The limit is checked before allocating, so a huge file is refused
     * instead of exhausting memory. */
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_bytes || (uint64_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return dj_error(DJ_EFORMAT, "%s: file is %lld bytes, more than the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = dj_malloc(n + 1);
    if (!buf) {
        close(fd);
        return dj_error(DJ_ENOMEM, "%s: cannot allocate %zu bytes to read it", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            dj_free(buf);
            if (r == 0) return dj_error(DJ_EIO, "%s: file shrank while being read (%zu of %zu bytes)", path, got, n);
            return dj_error(DJ_EIO, "%s: read failed: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    /* One more byte must hit end of file: a file still being written by
     * someone else would otherwise be parsed half-done. */
    unsigned char extra;
    ssize_t r;
    do r = read(fd, &extra, 1);
    while (r < 0 && errno == EINTR);
    close(fd);
    if (r != 0) {
        dj_free(buf);
        if (r > 0) return dj_error(DJ_EIO, "%s: file grew while being read", path);
        return dj_error(DJ_EIO, "%s: read failed: %s", path, strerror(errno));
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return DJ_OK;
}

/* ------------------------------------------------------------- atomic -- */

struct dj_atomic_file {
    int fd;
    int status;       /* first write failure (sticky) */
    char *path;       /* target */
    char *dir;        /* its directory, for the fsync after rename */
    char *tmp;        /* temporary file */
    char msg[512];    /* message of the first failure, re-raised by commit */
};

/* Split path into a malloc'd directory ("." if none) and a pointer to the
 * final component inside path. */
static char *dir_of(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x" -> "/" */
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

static int write_all(int fd, const void *data, size_t size) {
    const unsigned char *p = data;
    while (size > 0) {
        /* Chunks below 1 GiB: Linux caps one write() near 2 GiB anyway. */
        size_t chunk = size < ((size_t)1 << 30) ? size : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

static void atomic_release(dj_atomic_file *f, int remove_tmp) {
    if (f->fd >= 0) close(f->fd);
    if (remove_tmp && f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->dir);
    free(f->tmp);
    free(f);
}

int dj_atomic_open(const char *path, dj_atomic_file **out) {
    *out = NULL;
    if (!path || !*path) return dj_error(DJ_EINVAL, "atomic write: empty path");
    const char *base;
    dj_atomic_file *f = calloc(1, sizeof *f);
    if (!f) return dj_error(DJ_ENOMEM, "%s: out of memory", path);
    f->fd = -1;
    f->path = strdup(path);
    f->dir = dir_of(path, &base);
    if (!f->path || !f->dir) {
        atomic_release(f, 0);
        return dj_error(DJ_ENOMEM, "%s: out of memory", path);
    }
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        atomic_release(f, 0);
        return dj_error(DJ_EINVAL, "%s: names a directory, not a file", path);
    }
    /* Keep the temp name under NAME_MAX (255) even for long target names. */
    int base_len = (int)strnlen(base, 200);
    size_t cap = strlen(f->dir) + (size_t)base_len + 64;
    f->tmp = malloc(cap);
    if (!f->tmp) {
        atomic_release(f, 0);
        return dj_error(DJ_ENOMEM, "%s: out of memory", path);
    }
    /* O_EXCL with a fresh name: never clobber someone else's file, and the
     * mode 0666 is reduced by the umask like a normal fopen'ed file. */
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(f->tmp, cap, "%s/.%.*s.%ld.%u.tmp", f->dir, base_len, base, (long)getpid(),
                 atomic_fetch_add(&name_counter, 1u));
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd >= 0 || (errno != EEXIST && errno != EINTR)) break;
    }
    if (f->fd < 0) {
        int e = errno;
        int st = dj_error(DJ_EIO, "%s: cannot create a temporary file in '%s': %s", path, f->dir, strerror(e));
        atomic_release(f, 0);
        return st;
    }
    *out = f;
    return DJ_OK;
}

int dj_atomic_write(dj_atomic_file *f, const void *data, size_t size) {
    if (!f) return dj_error(DJ_EINVAL, "atomic write: NULL file");
    if (f->status) return dj_error(f->status, "%s", f->msg);
    if (size && !data) {
        f->status = dj_error(DJ_EINVAL, "%s: write of %zu bytes from NULL", f->path, size);
    } else if (write_all(f->fd, data, size) != 0) {
        f->status = dj_error(DJ_EIO, "%s: write failed: %s", f->path, strerror(errno));
    }
    if (f->status) snprintf(f->msg, sizeof f->msg, "%s", dj_last_error());
    return f->status;
}

int dj_atomic_commit(dj_atomic_file *f) {
    if (!f) return dj_error(DJ_EINVAL, "atomic write: NULL file");
    if (f->status) {
        int st = dj_error(f->status, "%s", f->msg);
        atomic_release(f, 1);
        return st;
    }
    /* fsync before rename: otherwise a crash can leave the new name pointing
     * at a file whose data never reached the disk (zero length on ext4). */
    if (fsync(f->fd) != 0) {
        int st = dj_error(DJ_EIO, "%s: fsync failed: %s", f->path, strerror(errno));
        atomic_release(f, 1);
        return st;
    }
    /* close can report delayed write errors (NFS, quotas). */
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        int st = dj_error(DJ_EIO, "%s: close failed: %s", f->path, strerror(errno));
        atomic_release(f, 1);
        return st;
    }
    if (rename(f->tmp, f->path) != 0) {
        int st = dj_error(DJ_EIO, "%s: cannot replace it with the new file: %s", f->path, strerror(errno));
        atomic_release(f, 1);
        return st;
    }
    /* The rename lives in the directory; sync it too. Filesystems that
     * cannot fsync a directory say EINVAL/ENOTSUP: nothing more to do there. */
    int st = DJ_OK;
    int dfd = open(f->dir, O_RDONLY | O_CLOEXEC
#ifdef O_DIRECTORY
                               | O_DIRECTORY
#endif
    );
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EROFS)
            st = dj_error(DJ_EIO, "%s: written, but syncing directory '%s' failed: %s", f->path, f->dir,
                          strerror(errno));
        close(dfd);
    }
    atomic_release(f, 0);
    return st;
}

void dj_atomic_abort(dj_atomic_file *f) {
    if (f) atomic_release(f, 1);
}

const char *dj_atomic_path(const dj_atomic_file *f) { return f ? f->path : NULL; }

int dj_write_file_atomic(const char *path, const void *data, size_t size) {
    dj_atomic_file *f;
    int st = dj_atomic_open(path, &f);
    if (st) return st;
    dj_atomic_write(f, data, size);
    return dj_atomic_commit(f); /* reports the write's failure, if any */
}

/* ---------------------------------------------------- writable check -- */

int dj_check_writable_dir(const char *path) {
    if (!path || !*path) return dj_error(DJ_EINVAL, "output directory: empty path");
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) return dj_error(DJ_ENOTFOUND, "output directory '%s' does not exist", path);
        if (e == ENOTDIR)
            return dj_error(DJ_ENOTFOUND, "output directory '%s' does not exist (a component of the path is a file)",
                            path);
        return dj_error(DJ_EIO, "output directory '%s' cannot be accessed: %s", path, strerror(e));
    }
    if (!S_ISDIR(st.st_mode)) return dj_error(DJ_EINVAL, "output directory '%s' is not a directory", path);
    size_t cap = strlen(path) + 64;
    char *probe = malloc(cap);
    if (!probe) return dj_error(DJ_ENOMEM, "out of memory");
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(probe, cap, "%s/.dmvjnd-probe.%ld.%u", path, (long)getpid(), atomic_fetch_add(&name_counter, 1u));
        fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        e = errno;
        if (fd >= 0 || (e != EEXIST && e != EINTR)) break;
    }
    if (fd < 0) {
        free(probe);
        return dj_error(DJ_EIO, "output directory '%s' is not writable: %s", path, strerror(e));
    }
    close(fd);
    unlink(probe);
    free(probe);
    return DJ_OK;
}

int dj_check_writable_parent(const char *path) {
    if (!path || !*path) return dj_error(DJ_EINVAL, "output file: empty path");
    const char *base;
    char *dir = dir_of(path, &base);
    if (!dir) return dj_error(DJ_ENOMEM, "out of memory");
    int st = dj_check_writable_dir(dir);
    free(dir);
    return st;
}

int dj_check_free_space(const char *path, uint64_t need) {
    if (!path || !*path) return dj_error(DJ_EINVAL, "output file: empty path");
    const char *base;
    char *dir = dir_of(path, &base);
    if (!dir) return dj_error(DJ_ENOMEM, "out of memory");
    struct statvfs fs;
    int asked = statvfs(dir, &fs) == 0;
    free(dir);
    if (!asked) return DJ_OK;
    uint64_t avail = (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize;
    if (avail >= need) return DJ_OK;
    return dj_error(DJ_EIO, "'%s': only %.1f MB free on its file system, and this run writes about %.1f MB there",
                    path, (double)avail / 1e6, (double)need / 1e6);
}

uint64_t dj_fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL; /* the 64-bit FNV prime */
    }
    return h;
}

int dj_file_fnv1a64(const char *path, uint64_t *hash, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return dj_error(DJ_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t buf[1 << 16];
    uint64_t h = DJ_FNV1A64_OFFSET, total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        h = dj_fnv1a64(h, buf, got);
        total += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return dj_error(DJ_EIO, "%s: read error", path);
    *hash = h;
    *size = total;
    return DJ_OK;
}
