/*
 * linger.c - how a connection's socket half ends, on its I/O thread.
 *
 * Close (IO_CLOSE, once everything the engine queued is written): our
 * side is shut top layer down (TLS close_notify, TCP FIN), then the
 * connection lingers: input is discarded until the peer closes or
 * LINGER_MS pass, so a peer still writing reads what it was sent instead
 * of a reset. Shutting and lingering connections are on the thread's
 * list, oldest first, at most LINGER_MAX; a timer bounds them.
 * Teardown: the socket goes now; the engine hears IO_CLOSED at once, and
 * the record is freed when both libuv's close callback has run and the
 * engine has said IO_RELEASE (it may still have records for it on the
 * way), whichever comes last.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/xport.h"

#define LINGER_READS 16 /* discarding reads per wakeup of a lingering socket */

static uint32_t linger_now(void)
{
	return (uint32_t)(uv_hrtime() / 1000000u);
}

static void linger_on_timer(uv_timer_t *t);

/* Runs the timer for the oldest ending connection. */
static void linger_schedule(struct iothr *io, uint32_t now)
{
	if (!io->lingering.head) {
		uv_timer_stop(&io->linger_timer);
		return;
	}
	uint32_t age = now - io->lingering.head->phase_since_ms;
	uint32_t wait = age >= LINGER_MS ? 1 : LINGER_MS - age;
	uv_timer_start(&io->linger_timer, linger_on_timer, wait, 0);
}

static void linger_on_timer(uv_timer_t *t)
{
	struct iothr *io = t->data;
	uint32_t now = linger_now();
	while (io->lingering.head && now - io->lingering.head->phase_since_ms >= LINGER_MS)
		sock_teardown(io, io->lingering.head, NULL);
	linger_schedule(io, now);
}

/* ---- the end --------------------------------------------------------------- */

/* Frees c: both the close callback and IO_RELEASE have come. */
static void sock_free(struct iothr *io, struct conn *c)
{
	if (c->read_pending) {
		/* rare: still queued for a read that will never happen */
		struct conn_vec *vecs[2] = {&io->pending, &io->starved};
		for (int k = 0; k < 2; k++)
			for (int i = 0; i < vecs[k]->n; i++)
				if (vecs[k]->v[i] == c)
					vecs[k]->v[i--] = vecs[k]->v[--vecs[k]->n];
	}
	xport_free(c->xport);
	free(c->tls_cert);
	free(c);
}

void sock_on_closed(struct iothr *io, struct conn *c)
{
	c->close_done = true;
	if (c->released)
		sock_free(io, c);
}

void sock_release(struct iothr *io, struct conn *c)
{
	c->released = true;
	if (c->close_done)
		sock_free(io, c);
}

void sock_teardown(struct iothr *io, struct conn *c, const char *why)
{
	if (c->torn)
		return;
	int fd = c->fd;
	c->torn = true;
	if (c->shutting || c->lingering)
		conn_list_remove(&io->lingering, c);
	/* Closing the descriptor takes it out of the epoll set; the record
	 * outlives this pass (iopoll_remove). The layers stay until the
	 * record is freed: why may be a layer's text. */
	iopoll_remove(io, c);
	c->fd = -1;
	if (fd >= 0)
		close(fd);
	struct ioq_rec r = {.op = IO_CLOSED, .conn = c, .p = (void *)why};
	iothr_report(io, &r);
}

/*
 * Everything is written and our side is shut: the peer reads what it was
 * sent, then EOF. Its input is discarded until it closes too or LINGER_MS
 * pass, so closing never resets a peer that is still writing (which would
 * destroy the DISCONNECT in its receive buffer). A lingering connection
 * holds no layer but the socket.
 */
static void sock_linger_start(struct iothr *io, struct conn *c)
{
	if (io->stopping || io->no_linger) {
		sock_teardown(io, c, NULL); /* nobody lingers during a shutdown */
		return;
	}
	c->lingering = true;
	c->flush_wait = false;
	c->xport = xport_strip(c->xport);
	sock_poll_update(io, c);
}

/* Our side of the stream ends, top layer down (TLS close_notify, then
 * TCP's FIN), then the connection lingers. */
void sock_shut(struct iothr *io, struct conn *c)
{
	const char *why = NULL;
	int rc = c->xport->ops->shutdown(c->xport, c->fd, &why);
	if (rc < 0) {
		sock_teardown(io, c, why);
	} else if (rc == 0) {
		c->flush_wait = true;
		sock_poll_update(io, c);
	} else {
		sock_linger_start(io, c);
	}
}

void sock_close(struct iothr *io, struct conn *c)
{
	if (c->torn || c->shutting)
		return;
	uint32_t now = linger_now();
	c->shutting = true;
	c->rd_on = false;
	c->wr_busy = false; /* a layer's refusal closes whatever the engine had queued */
	c->phase_since_ms = now;
	conn_list_append(&io->lingering, c);
	if (io->lingering.n > io->linger_max)
		sock_teardown(io, io->lingering.head, NULL);
	if (!uv_is_active((uv_handle_t *)&io->linger_timer))
		linger_schedule(io, now);
	sock_shut(io, c);
}

int sock_linger_drop(struct iothr *io, bool for_good)
{
	int n = 0;
	if (for_good)
		io->no_linger = true;
	for (; io->lingering.head; n++)
		sock_teardown(io, io->lingering.head, NULL);
	return n;
}

/* Discards what a lingering peer still sends; its EOF (or an error) ends
 * the connection. */
void sock_linger_read(struct iothr *io, struct conn *c)
{
	uint8_t sink[4096];
	int fd = c->fd;
	for (int i = 0; i < LINGER_READS; i++) {
		const char *why = NULL;
		ssize_t n = c->xport->ops->read(c->xport, fd, sink, sizeof(sink), &why);
		if (n == XPORT_AGAIN || (n > 0 && (size_t)n < sizeof(sink)))
			return;
		if (n <= 0) {
			sock_teardown(io, c, NULL);
			return;
		}
	}
}

static void sock_each_teardown(struct iothr *io, struct conn *c, void *why)
{
	sock_teardown(io, c, why);
}

void sock_teardown_all(struct iothr *io, const char *why)
{
	iopoll_each(io, sock_each_teardown, (void *)why);
}
