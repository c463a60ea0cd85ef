/* datadir.c - one daemon per data directory (see datadir.h). */
#include "datadir.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pid of the process holding the lock: the kernel's answer first (right even while
 * the holder has not written its pid yet), else the file's text (a holder in another pid
 * namespace shows as 0 to F_GETLK). 0 when neither is known. */
static long datadir_lock_holder(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	char text[32];
	ssize_t n;
	long pid;
	char *end;

	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		return (long)fl.l_pid;
	n = pread(fd, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno || end == text || pid <= 0)
		return 0;
	return pid;
}

int datadir_lock_acquire(const char *dir, int *fd_out, char *err, size_t errlen)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	char path[PATH_MAX], pid_text[32], who[32];
	struct stat st;
	int fd = -1, rc = HOOKD_EIO, n;
	long holder;

	*fd_out = -1;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err_set(err, errlen, "data_dir %s: cannot create it: %s", dir, strerror(errno));
		goto cleanup;
	}
	if (stat(dir, &st) != 0) {
		err_set(err, errlen, "data_dir %s: %s", dir, strerror(errno));
		goto cleanup;
	}
	if (!S_ISDIR(st.st_mode)) {
		err_set(err, errlen, "data_dir %s: not a directory", dir);
		goto cleanup;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warn("data_dir %s is open to group/others (mode %04o): it holds endpoint "
			 "signing secrets and every message; chmod 700 it",
			 dir, (unsigned)(st.st_mode & 07777));
	n = snprintf(path, sizeof(path), "%s/%s", dir, DATADIR_LOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		err_set(err, errlen, "data_dir %s: path too long", dir);
		goto cleanup;
	}
	/* O_NOFOLLOW: in a directory others can write to, a planted symlink must not make us
	 * lock (and truncate) some other file. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err_set(err, errlen, "data_dir %s: cannot open %s: %s", dir, path, strerror(errno));
		goto cleanup;
	}
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		if (errno != EACCES && errno != EAGAIN) {
			err_set(err, errlen, "data_dir %s: cannot lock %s: %s", dir, path,
				strerror(errno));
			goto cleanup;
		}
		holder = datadir_lock_holder(fd);
		if (holder > 0)
			snprintf(who, sizeof(who), "pid %ld", holder);
		else
			snprintf(who, sizeof(who), "pid unknown");
		err_set(err, errlen,
			"data_dir %s is in use by another hookd (%s holds %s); one data directory "
			"serves one daemon",
			dir, who, path);
		rc = HOOKD_EEXIST;
		goto cleanup;
	}
	n = snprintf(pid_text, sizeof(pid_text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid_text, (size_t)n, 0) != n) {
		err_set(err, errlen, "data_dir %s: cannot write %s: %s", dir, path,
			strerror(errno));
		goto cleanup;
	}
	*fd_out = fd;
	fd = -1;
	rc = HOOKD_OK;
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

void datadir_lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
