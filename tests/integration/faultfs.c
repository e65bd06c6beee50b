/*
 * faultfs.c - an LD_PRELOAD library that makes writes and syncs of chosen
 * files fail, for the persistence tests against the real binary: disk
 * full (ENOSPC) and I/O errors (EIO) on demand, without privileges.
 *
 * MIDGE_FAULT_CTL names a control file; while it exists and starts with
 * "enospc" or "eio", every write, pwrite, fallocate, fsync and fdatasync
 * on a file whose path contains MIDGE_FAULT_MATCH fails with that errno.
 * Remove the file (or empty it) and writes work again. Everything else is
 * passed to the C library untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The errno the next write to fd must fail with, or 0. */
static int fault_for(int fd)
{
	const char *ctl = getenv("MIDGE_FAULT_CTL");
	const char *match = getenv("MIDGE_FAULT_MATCH");
	if (!ctl || !match)
		return 0;
	int saved = errno;
	int f = open(ctl, O_RDONLY | O_CLOEXEC);
	if (f < 0) {
		errno = saved;
		return 0;
	}
	char mode[16] = "";
	ssize_t n = read(f, mode, sizeof mode - 1);
	close(f);
	errno = saved;
	if (n <= 0)
		return 0;
	int err = strncmp(mode, "enospc", 6) == 0 ? ENOSPC : strncmp(mode, "eio", 3) == 0 ? EIO : 0;
	if (!err)
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	errno = saved;
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return strstr(path, match) ? err : 0;
}

#define REAL(name, ret, ...)                                                   \
	static ret (*real_##name)(__VA_ARGS__);                                \
	if (!real_##name)                                                      \
		*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(write, ssize_t, int, const void *, size_t);
	int err = fault_for(fd);
	if (err) {
		errno = err;
		return -1;
	}
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
	int err = fault_for(fd);
	if (err) {
		errno = err;
		return -1;
	}
	return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
	int err = fault_for(fd);
	if (err) {
		errno = err;
		return -1;
	}
	return real_pwrite64(fd, buf, n, off);
}

int fsync(int fd)
{
	REAL(fsync, int, int);
	int err = fault_for(fd);
	if (err) {
		errno = err == ENOSPC ? EIO : err;
		return -1;
	}
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync, int, int);
	int err = fault_for(fd);
	if (err) {
		errno = err == ENOSPC ? EIO : err;
		return -1;
	}
	return real_fdatasync(fd);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
	REAL(posix_fallocate, int, int, off_t, off_t);
	int err = fault_for(fd);
	if (err)
		return err;
	return real_posix_fallocate(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	REAL(fallocate, int, int, int, off_t, off_t);
	int err = fault_for(fd);
	if (err) {
		errno = err;
		return -1;
	}
	return real_fallocate(fd, mode, off, len);
}
