/*
 * sse.c - GET /api/v1/events?prefix=P: the broker's events as
 * Server-Sent Events, the same events and the same JSON objects as the
 * ZeroMQ stream (hooks/render.c renders them; docs/events.md), filtered
 * by the same prefix rule: an event matches when P is a prefix of its
 * name, or of "name/topic" for message events.
 *
 * Each stream is an in-process event consumer on the engine thread. An
 * event is rendered at most once, and only when some stream wants it and
 * has room; each stream numbers the events offered to it ("seq") and
 * counts those it had no room for ("dropped"), as each ZeroMQ socket
 * does. A stream's output waits in a buffer of midge_http_sse_buffer
 * bytes: a reader that falls behind loses events (counted), and one that
 * takes nothing for HTTP_SSE_STALL_MS while bytes wait for it is closed
 * (counted): a slow reader never slows the broker or grows its memory.
 * (libmicrohttpd's own write buffer may hold a stuck reader's bytes while
 * ours is empty; the keepalive every HTTP_SSE_KEEPALIVE_MS then waits in
 * ours, so an idle stuck reader is found too.)
 *
 * libmicrohttpd pulls a stream's bytes through a content reader; with
 * nothing to send the connection is suspended (no busy polling) and an
 * event resumes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "transport/broker.h"
#include "transport/log.h"

#define HTTP_SSE_PREFIX_MAX 256
#define HTTP_SSE_STALL_MS 5000
#define HTTP_SSE_KEEPALIVE_MS 15000

struct sse_client {
	struct http_sse *s;
	struct sse_client *prev, *next;
	struct MHD_Connection *conn;
	char *buf;
	size_t off, len, cap; /* unsent bytes are buf[off..len) */
	uint64_t seq, dropped;
	uint64_t last_write_ms; /* the reader last took bytes (or a keepalive was queued) */
	uint64_t waiting_since; /* the oldest bytes waiting arrived (or were last taken from) */
	bool suspended;
	bool closing; /* end the stream at the next read */
	bool abort;   /* ... by closing the connection (a stuck reader) */
	size_t plen;
	char prefix[HTTP_SSE_PREFIX_MAX];
};

struct http_sse {
	struct http *h;
	struct sse_client *clients;
	int n_clients;
	struct hooks_buf render; /* one rendering per event, shared by every stream */
	struct http_sse_stats st;
};

struct http_sse *http_sse_new(struct http *h)
{
	struct http_sse *s = calloc(1, sizeof *s);
	if (s)
		s->h = h;
	return s;
}

void http_sse_free(struct http_sse *s)
{
	if (!s)
		return;
	/* Streams still listed belong to responses libmicrohttpd has freed
	 * or will not call again (the daemon is stopped first). */
	while (s->clients) {
		struct sse_client *c = s->clients;
		s->clients = c->next;
		c->s = NULL;
	}
	s->h->want = HTTP_WANT_COUNTERS;
	hooks_buf_release(&s->render);
	free(s);
}

void http_sse_stats(const struct http_sse *s, struct http_sse_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!s)
		return;
	*out = s->st;
	out->clients = (uint64_t)s->n_clients;
}

static void sse_wake(struct sse_client *c)
{
	if (c->suspended) {
		c->suspended = false;
		MHD_resume_connection(c->conn);
		http_run_soon(c->s->h);
	}
}

/* Appends p[0..n) to c's buffer at time now. Returns 0, or -1 when it
 * has no room. */
static int sse_append(struct sse_client *c, const char *p, size_t n, uint64_t now)
{
	if (c->len == c->off)
		c->waiting_since = now;
	if (c->len + n > c->cap && c->off) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len + n > c->cap)
		return -1;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	return 0;
}

static bool sse_room(const struct sse_client *c, size_t n)
{
	return c->len - c->off + n <= c->cap;
}

/* The ZeroMQ prefix rule: prefix of "name", or of "name/topic". */
static bool sse_wants(const struct sse_client *c, const char *name, size_t nlen,
		      const struct midge_str *topic)
{
	if (c->plen <= nlen)
		return memcmp(c->prefix, name, c->plen) == 0;
	if (!topic || memcmp(c->prefix, name, nlen) != 0 || c->prefix[nlen] != '/')
		return false;
	size_t rest = c->plen - nlen - 1;
	return rest <= topic->len && memcmp(c->prefix + nlen + 1, topic->p, rest) == 0;
}

/* An event c had no room for. */
static void sse_note_loss(struct http_sse *s, struct sse_client *c)
{
	c->dropped++;
	s->st.dropped++;
}

void http_sse_event(struct http_sse *s, const struct midge_event *ev)
{
	if (!s->clients)
		return;
	const char *name = midge_event_name(ev->type);
	if (!name)
		return;
	size_t nlen = strlen(name);
	const struct midge_str *topic = hooks_event_has_message(ev->type) && ev->u.message.msg
					    ? &ev->u.message.msg->topic
					    : NULL;
	int rendered = 0; /* 0 not yet, 1 done, -1 failed */
	char head[96];
	for (struct sse_client *c = s->clients; c; c = c->next) {
		if (c->closing || !sse_wants(c, name, nlen, topic))
			continue;
		uint64_t seq = ++c->seq;
		/* no rendering for a stream that is full anyway */
		if (!sse_room(c, nlen + 64 + (rendered > 0 ? s->render.len : 256))) {
			sse_note_loss(s, c);
			continue;
		}
		if (rendered == 0)
			rendered = hooks_render_body(&s->render, ev, s->h->node) == 0 ? 1 : -1;
		if (rendered < 0) {
			sse_note_loss(s, c);
			continue;
		}
		size_t off = hooks_render_head(&s->render, seq, c->dropped);
		size_t jlen = s->render.len - off;
		int hl = snprintf(head, sizeof head, "id: %llu\nevent: %s\ndata: ",
				  (unsigned long long)seq, name);
		if (hl < 0 || (size_t)hl >= sizeof head || !sse_room(c, (size_t)hl + jlen + 2)) {
			sse_note_loss(s, c);
			continue;
		}
		sse_append(c, head, (size_t)hl, ev->time_ms);
		sse_append(c, s->render.p + off, jlen, ev->time_ms);
		sse_append(c, "\n\n", 2, ev->time_ms);
		s->st.events++;
		sse_wake(c);
	}
}

/* libmicrohttpd wants bytes for c's stream. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse_client *c = cls;
	(void)pos;
	if (!c->s || c->closing)
		return c->abort ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = c->len - c->off;
	if (n == 0) {
		/* nothing to send: wait for an event (sse_wake) or a keepalive */
		c->suspended = true;
		MHD_suspend_connection(c->conn);
		return 0;
	}
	if (n > max)
		n = max;
	memcpy(out, c->buf + c->off, n);
	c->off += n;
	if (c->off == c->len)
		c->off = c->len = 0;
	c->last_write_ms = c->waiting_since = broker_now_ms(); /* progress */
	return (ssize_t)n;
}

/* Keeps h->want to the counters' types and those some open stream's
 * prefix can match, so no other message event is built for us. */
static void sse_want_update(struct http_sse *s)
{
	uint32_t want = HTTP_WANT_COUNTERS;
	for (uint32_t t = 1; t < MIDGE_EV__COUNT; t++) {
		const char *name = midge_event_name((enum midge_event_type)t);
		if (!name)
			continue;
		size_t nlen = strlen(name);
		for (const struct sse_client *c = s->clients; c && !(want & (1u << t)); c = c->next)
			if (c->plen <= nlen ? memcmp(c->prefix, name, c->plen) == 0
					    : memcmp(c->prefix, name, nlen) == 0 && c->prefix[nlen] == '/')
				want |= 1u << t;
	}
	s->h->want = want;
}

static void sse_free_client(void *cls)
{
	struct sse_client *c = cls;
	struct http_sse *s = c->s;
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->clients = c->next;
		if (c->next)
			c->next->prev = c->prev;
		s->n_clients--;
		sse_want_update(s);
	}
	free(c->buf);
	free(c);
}

int http_sse_open(struct http_req *r, const char *prefix, size_t plen)
{
	struct http *h = r->h;
	struct http_sse *s = h->sse;
	if (plen >= HTTP_SSE_PREFIX_MAX)
		return http_reply_error(r, 400, "bad_request", "prefix is over 255 bytes");
	if (s->n_clients >= h->m->conf.http.sse_clients) {
		s->st.refused++;
		return http_reply_error(r, 503, "too_many_streams",
					"midge_http_sse_clients event streams are open");
	}
	struct sse_client *c = calloc(1, sizeof *c);
	if (!c || !(c->buf = malloc(h->m->conf.http.sse_buffer))) {
		free(c);
		return http_reply_error(r, 500, "internal", "out of memory");
	}
	c->s = s;
	c->conn = r->conn;
	c->cap = h->m->conf.http.sse_buffer;
	c->plen = plen;
	memcpy(c->prefix, prefix, plen);
	c->last_write_ms = broker_now_ms();
	/* a comment first, so the reader sees the stream open at once */
	static const char hello[] = ": midge events\n\n";
	sse_append(c, hello, sizeof hello - 1, c->last_write_ms);
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, c, sse_free_client);
	if (!resp) {
		free(c->buf);
		free(c);
		return http_reply_error(r, 500, "internal", "out of memory");
	}
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->n_clients++;
	s->st.opened++;
	sse_want_update(s);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return http_reply(r, 200, resp);
}

void http_sse_tick(struct http_sse *s, uint64_t now_ms)
{
	if (!s)
		return;
	for (struct sse_client *c = s->clients; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->len > c->off && now_ms - c->waiting_since >= HTTP_SSE_STALL_MS) {
			/* bytes wait and the reader takes none: it is gone or stuck */
			log_notice("http: event stream closed: its reader took nothing for %d s "
				   "(%llu events dropped)",
				   HTTP_SSE_STALL_MS / 1000, (unsigned long long)c->dropped);
			s->st.slow_closed++;
			c->closing = c->abort = true;
			/* libmicrohttpd asks the reader nothing while the socket is
			 * full: its own timeout closes the connection then */
			MHD_set_connection_option(c->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
			sse_wake(c);
			continue;
		}
		if (c->len == c->off && now_ms - c->last_write_ms >= HTTP_SSE_KEEPALIVE_MS) {
			/* a comment: proxies keep the stream, a vanished reader is found */
			static const char keepalive[] = ": keepalive\n\n";
			sse_append(c, keepalive, sizeof keepalive - 1, now_ms);
			c->last_write_ms = now_ms;
			sse_wake(c);
		}
	}
}

int http_sse_close_all(struct http_sse *s)
{
	for (struct sse_client *c = s->clients; c; c = c->next) {
		c->closing = true;
		sse_wake(c);
	}
	return s->n_clients;
}
