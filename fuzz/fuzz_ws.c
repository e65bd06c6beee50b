/*
 * fuzz_ws.c - the WebSocket connection layer (transport/ws*.c) on
 * arbitrary input: the HTTP upgrade, then frames (the layer's own scan
 * of data frames and wslay's of the rest), over an in-memory layer below
 * it that hands the input out in chunks of varying size (so headers and
 * frames split anywhere) and takes what is written in varying amounts.
 * The first bytes pick the chunk sizes, the caller's buffer sizes and
 * whether a path is configured. Must hold: no crash or leak, a read
 * never returns more than it was given room for, the MQTT bytes out never
 * exceed the bytes in, and every result is one the xport contract names.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_common.h"
#include "transport/rbuf.h"
#include "transport/ws.h"
#include "transport/xport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem_xport {
	struct xport base;
	const uint8_t *in;
	size_t len, off;
	uint8_t chunk;   /* bytes handed out per read: 1 + chunk */
	uint8_t take;    /* what a writev takes: all, or part */
	size_t written;
};

static ssize_t mem_read(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why)
{
	struct mem_xport *m = (struct mem_xport *)x;
	(void)fd;
	(void)why;
	if (m->off == m->len)
		return 0;
	size_t n = (size_t)m->chunk + 1;
	if (n > len)
		n = len;
	if (n > m->len - m->off)
		n = m->len - m->off;
	memcpy(buf, m->in + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static ssize_t mem_writev(struct xport *x, int fd, const struct iovec *iov, int cnt,
			  const char **why)
{
	struct mem_xport *m = (struct mem_xport *)x;
	size_t total = 0;
	(void)fd;
	(void)why;
	FUZZ_CHECK(cnt > 0 && cnt <= XPORT_IOV);
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if (m->take & 1)
		total = total / 2; /* a socket that takes half */
	m->written += total;
	m->take = (uint8_t)(m->take >> 1 | m->take << 7);
	return total ? (ssize_t)total : XPORT_AGAIN;
}

static bool mem_pending(const struct xport *x)
{
	(void)x;
	return false;
}

static size_t mem_queued(const struct xport *x)
{
	(void)x;
	return 0;
}

static int mem_flush(struct xport *x, int fd, const char **why)
{
	(void)x;
	(void)fd;
	(void)why;
	return 1;
}

static const struct xport_ops mem_ops = {
	.name = "memory",
	.read = mem_read,
	.writev = mem_writev,
	.pending = mem_pending,
	.queued = mem_queued,
	.flush = mem_flush,
	.shutdown = mem_flush,
	.free = NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	struct mem_xport mem = {.base = {&mem_ops, NULL}, .in = data + 4, .len = size - 4,
				.chunk = data[0], .take = data[1]};
	struct ws_conf conf = {.refs = 1, .path = (data[2] & 1) ? "/mqtt" : NULL, .dir_fd = -1,
			       .headers_max = 1024};
	struct rbuf_pool pool = {0};
	size_t room = 1 + (data[3] % 200) * 37;
	uint8_t *buf = malloc(room);
	struct xport *w = ws_xport_new(&conf, &mem.base, &pool, 2048);
	size_t got = 0;
	FUZZ_CHECK(buf && w);
	for (int i = 0; i < 100000; i++) {
		const char *why = NULL;
		ssize_t n = w->ops->read(w, -1, buf, room, &why);
		FUZZ_CHECK(n <= (ssize_t)room);
		if (n > 0) {
			got += (size_t)n;
			/* Answer with what came in: one frame per call. */
			struct iovec iov[2] = {{buf, (size_t)n / 2}, {buf + n / 2, (size_t)n - (size_t)n / 2}};
			ssize_t t = w->ops->writev(w, -1, iov, n > 1 ? 2 : 1, &why);
			FUZZ_CHECK(t == XPORT_AGAIN || (t >= 0 && t <= n) || t == XPORT_FAIL);
			continue;
		}
		FUZZ_CHECK(n == 0 || n == XPORT_AGAIN || n == XPORT_FAIL || n == XPORT_REFUSED ||
			   n == XPORT_CLOSE);
		if (n != 0 && n != XPORT_AGAIN)
			FUZZ_CHECK(why != NULL);
		if (n == XPORT_AGAIN && w->ops->pending(w))
			continue;
		break;
	}
	FUZZ_CHECK(got <= mem.len);
	const char *why = NULL;
	for (int i = 0; i < 64 && w->ops->flush(w, -1, &why) == 0; i++)
		;
	w->ops->shutdown(w, -1, &why);
	(void)w->ops->queued(w);
	w->ops->free(w);
	rbuf_pool_clear(&pool);
	free(buf);
	return 0;
}
