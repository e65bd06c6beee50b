/*
 * tcp.c - the bottom connection layer (see xport.h): the non-blocking
 * socket itself. Stateless, hence one object shared by every connection.
 * Also the stack helpers every layer uses.
 */
#include "transport/xport.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

/* The socket error as libuv's text: a static string. */
static const char *tcp_strerror(int err)
{
	return uv_strerror(uv_translate_sys_error(err));
}

/* One read, or one write for one segment and one writev for more: a
 * single system call per flush whatever the queue holds. */
static ssize_t tcp_io(int fd, bool reading, const struct iovec *iov, int cnt, const char **why)
{
	for (;;) {
		ssize_t n = reading ? read(fd, iov[0].iov_base, iov[0].iov_len)
			    : cnt == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len)
				       : writev(fd, iov, cnt);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return XPORT_AGAIN;
		*why = reading ? tcp_strerror(errno) : "write error";
		return XPORT_FAIL;
	}
}

static ssize_t tcp_read(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	(void)x;
	return tcp_io(fd, true, &iov, 1, why);
}

static ssize_t tcp_writev(struct xport *x, int fd, const struct iovec *iov, int cnt,
			  const char **why)
{
	(void)x;
	return tcp_io(fd, false, iov, cnt, why);
}

static bool tcp_pending(const struct xport *x)
{
	(void)x;
	return false; /* what the socket holds, the poller sees */
}

static size_t tcp_queued(const struct xport *x)
{
	(void)x;
	return 0;
}

static int tcp_flush(struct xport *x, int fd, const char **why)
{
	(void)x;
	(void)fd;
	(void)why;
	return 1;
}

static int tcp_shutdown(struct xport *x, int fd, const char **why)
{
	(void)x;
	if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN) {
		*why = tcp_strerror(errno);
		return XPORT_FAIL;
	}
	return 1;
}

static const struct xport_ops tcp_ops = {
	.name = "tcp",
	.read = tcp_read,
	.writev = tcp_writev,
	.pending = tcp_pending,
	.queued = tcp_queued,
	.flush = tcp_flush,
	.shutdown = tcp_shutdown,
	.free = NULL,
};

struct xport tcp_xport = {.ops = &tcp_ops, .below = NULL};

struct xport *xport_strip(struct xport *top)
{
	while (top && top->below) {
		struct xport *below = top->below;
		top->ops->free(top);
		top = below;
	}
	return top;
}

void xport_free(struct xport *top)
{
	struct xport *bottom = xport_strip(top);
	if (bottom && bottom->ops->free)
		bottom->ops->free(bottom);
}
