/*
 * endpoint.c - the default endpoint of the event publisher: an ipc://
 * socket in a directory only the broker's user can open. Events carry
 * every payload, client id and user name, so the directory, not the
 * socket file (whose mode ZeroMQ leaves to the umask), is what keeps
 * other users out; one that others could open, or that another user owns
 * (and could open up later), stops start-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "hooks/hooks_info.h"

/* The directory, by the rules in hooks_info.h. */
static int endpoint_dir(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (xdg && *xdg)
		n = snprintf(out, cap, "%s/midge", xdg);
	else if (geteuid() == 0)
		n = snprintf(out, cap, "/run/midge");
	else
		n = snprintf(out, cap, "/tmp/midge-%lu", (unsigned long)geteuid());
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

int hooks_default_endpoint(char *out, size_t outlen, char *err, size_t errlen)
{
	char dir[200];
	struct stat st;
	if (endpoint_dir(dir, sizeof dir) < 0) {
		snprintf(err, errlen, "event socket directory: path too long (XDG_RUNTIME_DIR)");
		return -1;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "event socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	/* lstat: a symbolic link could point anywhere, whoever owns it */
	if (lstat(dir, &st) != 0) {
		snprintf(err, errlen, "event socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "event socket directory %s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "event socket directory %s belongs to uid %lu, not to midge's user "
			 "(uid %lu): remove it, or set midge_hooks_endpoint",
			 dir, (unsigned long)st.st_uid, (unsigned long)geteuid());
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "event socket directory %s has mode %03o: others could read every event; "
			 "chmod 700 it, or set midge_hooks_endpoint",
			 dir, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	int n = snprintf(out, outlen, "ipc://%s/events", dir);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "event socket path too long");
		return -1;
	}
	return 0;
}
