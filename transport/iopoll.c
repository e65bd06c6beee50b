/*
 * iopoll.c - the sockets of one I/O thread polled through an epoll
 * descriptor of its own, itself polled by one uv_poll_t on the thread's
 * loop.
 *
 * Why not a uv_poll_t per connection: that handle is 160 bytes, more
 * than half of an idle connection's transport record, and libuv checks
 * each new descriptor with an epoll ADD and DEL and an ioctl(FIONBIO)
 * before polling it. Here a connection carries its descriptor and two
 * bits; the thread keeps a table by descriptor (as libuv's watcher array
 * did) for the shutdown walk. The cost is one more epoll_wait per loop
 * pass in which a socket is ready, shared by every socket ready in it.
 *
 * Level-triggered like libuv: what is not read this pass is announced
 * again in the next. A socket's interest is changed at once (libuv
 * batched the changes until its next poll: the count of epoll_ctl calls
 * is the same, only earlier).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"

#define IOPOLL_BATCH 256 /* events taken per wake-up; the rest come next pass */

static void iopoll_on_ready(uv_poll_t *h, int status, int events);

int iopoll_init(struct iothr *io)
{
	io->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (io->epfd < 0)
		return -1;
	if (uv_poll_init(io->loop, &io->epoll_watch, io->epfd) < 0) {
		close(io->epfd);
		io->epfd = -1;
		return -1;
	}
	io->epoll_watch.data = io;
	/* libuv's uv_poll_start only fails on a handle being closed */
	uv_poll_start(&io->epoll_watch, UV_READABLE, iopoll_on_ready);
	return 0;
}

static void iopoll_on_watch_closed(uv_handle_t *h)
{
	struct iothr *io = h->data;
	close(io->epfd);
	io->epfd = -1;
}

void iopoll_close(struct iothr *io)
{
	if (io->epfd >= 0 && !uv_is_closing((uv_handle_t *)&io->epoll_watch))
		uv_close((uv_handle_t *)&io->epoll_watch, iopoll_on_watch_closed);
}

void iopoll_free(struct iothr *io)
{
	iopoll_flush_closed(io);
	free(io->closed.v);
	free(io->by_fd);
}

int iopoll_add(struct iothr *io, struct conn *c, int fd)
{
	if (fd >= io->by_fd_cap) {
		int ncap = io->by_fd_cap ? io->by_fd_cap : 1024;
		while (ncap <= fd)
			ncap *= 2;
		struct conn **nv = realloc(io->by_fd, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return -1;
		memset(nv + io->by_fd_cap, 0, (size_t)(ncap - io->by_fd_cap) * sizeof(*nv));
		io->by_fd = nv;
		io->by_fd_cap = ncap;
	}
	c->fd = fd;
	c->io = io;
	c->events = 0;
	c->registered = 0;
	io->by_fd[fd] = c;
	return 0;
}

/*
 * Polls c for want (UV_READABLE | UV_WRITABLE). An empty interest takes
 * the socket out of the set rather than leaving it with no events:
 * epoll reports a hang-up whatever the mask, and a paused connection
 * whose peer hung up would wake every pass.
 */
int iopoll_set(struct iothr *io, struct conn *c, unsigned want)
{
	if (!want) {
		if (c->registered && epoll_ctl(io->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
			return -errno;
		c->registered = 0;
		c->events = 0;
		return 0;
	}
	struct epoll_event ev = {.events = ((want & UV_READABLE) ? EPOLLIN : 0u) |
					   ((want & UV_WRITABLE) ? EPOLLOUT : 0u),
				 .data.ptr = c};
	if (epoll_ctl(io->epfd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return -errno;
	c->registered = 1;
	c->events = want & 3u;
	return 0;
}

/*
 * c's socket is closed by the caller right after: closing the descriptor
 * takes it out of the epoll set. The record itself is freed only once
 * nothing on the stack (nor an event of the batch being dispatched) can
 * reach it: iopoll_flush_closed, at the end of the pass.
 */
void iopoll_remove(struct iothr *io, struct conn *c)
{
	if (c->fd >= 0 && c->fd < io->by_fd_cap && io->by_fd[c->fd] == c)
		io->by_fd[c->fd] = NULL;
	c->registered = 0;
	c->events = 0;
	struct conn_vec *v = &io->closed;
	if (v->n == v->cap) {
		int ncap = v->cap ? v->cap * 2 : 64;
		struct conn **nv = realloc(v->v, (size_t)ncap * sizeof(*nv));
		if (!nv) {
			/* nothing else references c now but the caller's
			 * stack: it is done as soon as the caller is */
			log_err("out of memory: a closed connection's record is freed late");
			c->close_done = true;
			return;
		}
		v->v = nv;
		v->cap = ncap;
	}
	v->v[v->n++] = c;
}

void iopoll_flush_closed(struct iothr *io)
{
	/* sock_on_closed may free: take the list first */
	while (io->closed.n > 0) {
		struct conn *c = io->closed.v[--io->closed.n];
		sock_on_closed(io, c);
	}
}

void iopoll_each(struct iothr *io, void (*fn)(struct iothr *, struct conn *, void *), void *arg)
{
	for (int fd = 0; fd < io->by_fd_cap; fd++)
		if (io->by_fd[fd])
			fn(io, io->by_fd[fd], arg);
}

static void iopoll_on_ready(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct iothr *io = h->data;
	struct epoll_event evs[IOPOLL_BATCH];
	int n = epoll_wait(io->epfd, evs, IOPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;
		if (c->torn)
			continue; /* torn down by an earlier event of this batch */
		uint32_t e = evs[i].events;
		if (e & EPOLLERR) {
			sock_on_poll(io, c, -1, 0);
			continue;
		}
		/* A hang-up alone is announced as what was polled for, as
		 * libuv does: the read or write that follows finds the end. */
		int ready = ((e & (EPOLLIN | EPOLLHUP)) ? UV_READABLE : 0) |
			    ((e & (EPOLLOUT | EPOLLHUP)) ? UV_WRITABLE : 0);
		ready &= (int)c->events;
		if (ready)
			sock_on_poll(io, c, 0, ready);
	}
	iopoll_flush_closed(io);
}
