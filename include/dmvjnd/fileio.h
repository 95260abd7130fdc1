/*
 * File helpers: whole-file reads with a size limit, crash-safe (atomic)
 * writes, and an early check that an output directory is usable.
 *
 * Atomic writes exist because checkpoints are written after hours of
 * training: a crash, a full disk or a kill in the middle of a write must
 * leave the previous file intact, never a truncated one. The data goes to a
 * temporary file in the target's directory (same filesystem, so the final
 * rename is atomic), which is fsync'ed, renamed over the target, and then the
 * directory is fsync'ed so the rename itself survives a power loss. Any
 * failure removes the temporary file and leaves the target untouched.
 *
 * The temporary file is named ".<target name>.<pid>.<n>.tmp" and created with
 * mode 0666 minus the umask (as fopen would); a replaced target does not keep
 * its old permissions. A process killed mid-write can leave such a file
 * behind (nothing can remove it then); it never replaces the target.
 *
 * POSIX only (open/fsync/rename).
 */
#ifndef DMVJND_FILEIO_H
#define DMVJND_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read all of `path`. The file's size is checked against max_bytes before
 * anything is allocated. On success *data (free with dj_free; 64-byte aligned
 * and followed by one extra '\0' byte so text can be used as a C string) and
 * *size (bytes, without the extra '\0') are set.
 * Errors: DJ_EIO (missing, unreadable, not a regular file, changed size while
 * being read), DJ_EFORMAT (larger than max_bytes), DJ_ENOMEM. */
int dj_read_file(const char *path, size_t max_bytes, void **data, size_t *size);

/* Streaming atomic write. */
typedef struct dj_atomic_file dj_atomic_file;

/* Create the temporary file for an atomic write of `path`.
 * Errors: DJ_EIO (directory missing or not writable), DJ_EINVAL, DJ_ENOMEM. */
int dj_atomic_open(const char *path, dj_atomic_file **out);

/* Append bytes. A failure is remembered: later writes do nothing and
 * dj_atomic_commit returns it (so callers may check only the commit). */
int dj_atomic_write(dj_atomic_file *f, const void *data, size_t size);

/* Flush and fsync the temporary file, rename it over the target, fsync the
 * directory. Always consumes `f`. On failure the temporary file is removed
 * and the target is as it was (DJ_EIO, or the error of an earlier write);
 * the one exception is a failing fsync of the directory after the rename,
 * reported as DJ_EIO although the new file is already in place. */
int dj_atomic_commit(dj_atomic_file *f);

/* Give up: remove the temporary file, leave the target untouched, free `f`
 * (NULL is fine). */
void dj_atomic_abort(dj_atomic_file *f);

/* Path of the target the atomic file will replace. */
const char *dj_atomic_path(const dj_atomic_file *f);

/* Whole buffer in one call: open + write + commit. */
int dj_write_file_atomic(const char *path, const void *data, size_t size);

/* Check, before long work starts, that `path` is an existing directory in
 * which files can be created: creates and removes a probe file, because
 * permission bits alone do not tell (read-only mounts, root, ACLs, quotas).
 * Errors: DJ_ENOTFOUND (does not exist, or a path component is a regular
 * file), DJ_EINVAL (exists but is not a directory), DJ_EIO (not writable). */
int dj_check_writable_dir(const char *path);

/* Directory that will hold `path`'s file ("." when path has no '/'); checks
 * that it is writable as dj_check_writable_dir does. */
int dj_check_writable_parent(const char *path);

/* Check, before long work starts, that the file system holding `path`'s
 * file has at least `need` bytes available to this user (statvfs
 * f_bavail). DJ_EIO naming the path and both sizes otherwise; a file system
 * that cannot be asked passes (the write itself still reports a full disk). */
int dj_check_free_space(const char *path, uint64_t need);

/* The 64-bit FNV-1a hash of a file's bytes and its size (cache keys,
 * recipes: a file whose content changed is a different file). */
int dj_file_fnv1a64(const char *path, uint64_t *hash, uint64_t *size);

/* FNV-1a over n more bytes, from h (DJ_FNV1A64_OFFSET to start). */
#define DJ_FNV1A64_OFFSET 0xcbf29ce484222325ULL
uint64_t dj_fnv1a64(uint64_t h, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
