/* datadir.h - the data directory: created private, checked, and held by one daemon.
 *
 * LMDB lets any number of processes open one environment, and two hookd processes on one
 * store would both send every pending delivery. The daemon therefore holds an exclusive
 * lock on DATA_DIR/hookd.lock (its pid written inside for people and tools) for as long as
 * it runs. The lock is a POSIX record lock: the kernel drops it when the process exits,
 * however it exits, so a kill -9 leaves no stale lock to clean up. */
#ifndef HOOKD_DATADIR_H
#define HOOKD_DATADIR_H

#include <stddef.h>

/* The lock file's name inside the data directory. */
#define DATADIR_LOCK_NAME "hookd.lock"

/* Creates dir (mode 0700) when missing, warns when an existing one is open to group or
 * others (it holds signing secrets; the mode is left as the operator set it), and takes
 * the lock. On success *fd is the lock file's descriptor, owned by the caller until
 * datadir_lock_release(). HOOKD_EEXIST when another process holds the lock (err names
 * the directory and that process's pid), HOOKD_EIO for any other failure (err says what). */
int datadir_lock_acquire(const char *dir, int *fd, char *err, size_t errlen);

/* Releases the lock (closes fd); fd < 0 is ignored. The file stays: removing it would let
 * a daemon starting at that moment lock an inode nobody else can find. */
void datadir_lock_release(int fd);

#endif
