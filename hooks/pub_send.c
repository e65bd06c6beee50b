/*
 * pub_send.c - one event to the event publisher's sockets (see pub.h),
 * on the hooks thread.
 *
 * Sending never blocks: ZMQ_XPUB_NODROP makes a send to a subscriber whose
 * queue is at the high-water mark fail with EAGAIN (instead of ZeroMQ
 * silently discarding it), and ZMQ_DONTWAIT turns that into an immediate
 * return, which we count as a drop.
 */
#include "hooks/pub.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

/* A batch of compact events goes out at this size, or at the end of the
 * round of records that filled it. */
#define PUB_BATCH_BYTES (64 * 1024)

static int key_build(struct hooks_buf *key, const char *name, size_t nlen,
		     const struct midge_str *topic)
{
	size_t tlen = topic ? topic->len : 0;
	key->len = 0;
	if (hooks_buf_reserve(key, nlen + 1 + tlen) < 0)
		return -1;
	memcpy(key->p, name, nlen);
	key->len = nlen;
	if (topic) {
		key->p[key->len++] = '/';
		if (tlen)
			memcpy(key->p + key->len, topic->p, tlen);
		key->len += tlen;
	}
	return 0;
}

/* The JSON sent when rendering failed (out of memory) after the name
 * frame had gone out: a multipart message cannot be taken back. */
static size_t render_fallback(char *out, size_t cap, uint64_t seq, uint64_t dropped,
			      const char *name)
{
	int n = snprintf(out, cap,
			 "{\"schema\":%d,\"seq\":%llu,\"dropped\":%llu,\"event\":\"%s\","
			 "\"error\":\"out of memory\"}",
			 MIDGE_EVENT_SCHEMA, (unsigned long long)seq, (unsigned long long)dropped,
			 name);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/*
 * Sends the first (or only) frame, the one that meets the high-water mark.
 * zmq_send reads ZeroMQ's commands only now and then, so a subscriber that
 * has just drained its queue may not be known yet: on EAGAIN, ZMQ_EVENTS
 * reads them and the send is tried once more (only when a drop is due
 * anyway, and once per millisecond of event time at most, so a subscriber
 * that stays stuck does not cost a system call per event).
 */
static int sock_send_first(struct pub_sock *s, const char *p, size_t len, int flags,
			   uint64_t now_ms)
{
	int ev = 0;
	size_t evlen = sizeof(ev);
	if (zmq_send(s->sock, p, len, flags | ZMQ_DONTWAIT) >= 0)
		return 0;
	if (zmq_errno() != EAGAIN || now_ms == s->recheck_ms)
		return -1;
	s->recheck_ms = now_ms;
	if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &evlen) != 0)
		return -1;
	return zmq_send(s->sock, p, len, flags | ZMQ_DONTWAIT) >= 0 ? 0 : -1;
}

/*
 * Sends one event to one socket as JSON: the name frame goes first, before
 * the JSON is rendered. It is the only frame that can meet the high-water
 * mark (ZeroMQ counts a multipart message once, when it is complete, so
 * once the first frame is accepted the others are too), and a full socket
 * then costs no rendering. *rendered: 0 not yet, 1 done, -1 failed.
 */
static int sock_send_json(struct hooks_publisher *p, struct pub_sock *s,
			  const struct hooks_rec_view *r, int *rendered)
{
	const struct midge_event *ev = &r->ev;
	bool has_msg = hooks_event_has_message(ev->type);
	const struct midge_message *msg = has_msg ? ev->u.message.msg : NULL;
	if (sock_send_first(s, p->key.p, p->key.len, ZMQ_SNDMORE, ev->time_ms) < 0)
		return -1;
	if (*rendered == 0) {
		*rendered = hooks_render_body(&p->json, ev, p->node) == 0 ? 1 : -1;
		if (*rendered > 0)
			p->t_rendered++;
	}
	const char *json;
	size_t json_len;
	char fallback[256];
	if (*rendered > 0) {
		size_t off = hooks_render_head(&p->json, r->seq, s->dropped);
		json = p->json.p + off;
		json_len = p->json.len - off;
	} else {
		json = fallback;
		json_len = render_fallback(fallback, sizeof fallback, r->seq, s->dropped,
					   midge_event_name(ev->type));
	}
	int more = has_msg ? ZMQ_SNDMORE : 0;
	if (zmq_send(s->sock, json, json_len, ZMQ_DONTWAIT | more) < 0 ||
	    (has_msg && zmq_send(s->sock, msg && msg->payload_len ? msg->payload : "",
				 msg ? msg->payload_len : 0, ZMQ_DONTWAIT) < 0))
		return -1; /* cannot happen after the first frame went out (see above) */
	return 0;
}

/* Sends a message event to one socket as one compact frame (render.h). */
static int sock_send_compact(struct hooks_publisher *p, struct pub_sock *s,
			     const struct hooks_rec_view *r)
{
	if (hooks_compact_start(&p->frame, p->key.p, p->key.len, false) < 0 ||
	    hooks_compact_body(&p->frame, &r->ev, r->seq, s->dropped) < 0)
		return -1;
	return sock_send_first(s, p->frame.p, p->frame.len, 0, r->ev.time_ms);
}

/* Sends a socket's batch of one event type, if it has one: all its events
 * go, or none (they are then drops). */
static void batch_send(struct hooks_publisher *p, struct pub_sock *s, int type)
{
	struct pub_batch *bt = &s->batch[type];
	if (!bt->count)
		return;
	hooks_compact_count(&bt->b, bt->klen, bt->count);
	if (sock_send_first(s, bt->b.p, bt->b.len, 0, bt->time_ms) < 0) {
		s->dropped += bt->count;
		p->t_dropped += bt->count;
	} else {
		p->t_sent += bt->count;
	}
	p->touched = true;
	bt->count = 0;
	bt->b.len = 0;
}

void hooks_pub_send_batches(struct hooks_publisher *p)
{
	if (p->format != HOOKS_FORMAT_COMPACT)
		return;
	for (int i = 0; i < p->n; i++)
		for (int t = 1; t < MIDGE_EV__COUNT; t++)
			batch_send(p, &p->s[i], t);
}

/*
 * Adds a message event to the socket's batch of its type. Only when every
 * prefix of the socket that wants the type wants all of it: a batch frame
 * ("<name>/" and a NUL) reaches exactly those subscribers, and the
 * subscribers of a topic prefix, who would not get it, get single frames
 * instead (then for the whole socket, or a subscriber of both kinds would
 * get events twice).
 */
static int batch_add(struct hooks_publisher *p, struct pub_sock *s, const struct hooks_rec_view *r,
		     const char *name)
{
	struct pub_batch *bt = &s->batch[r->ev.type];
	if (!bt->count) {
		size_t nlen = strlen(name);
		char key[64];
		memcpy(key, name, nlen);
		key[nlen] = '/';
		bt->klen = nlen + 1;
		if (hooks_compact_start(&bt->b, key, bt->klen, true) < 0)
			return -1;
	}
	if (hooks_compact_append(&bt->b, &r->ev, r->seq, s->dropped) < 0)
		return -1;
	bt->count++;
	bt->time_ms = r->ev.time_ms;
	if (bt->b.len >= PUB_BATCH_BYTES)
		batch_send(p, s, r->ev.type);
	return 0;
}

void hooks_pub_send(struct hooks_publisher *p, const struct hooks_rec_view *r)
{
	const struct midge_event *ev = &r->ev;
	const char *name = midge_event_name(ev->type);
	if (!name)
		return;
	bool has_msg = hooks_event_has_message(ev->type);
	const struct midge_message *msg = has_msg ? ev->u.message.msg : NULL;
	const struct midge_str *topic = msg ? &msg->topic : NULL;
	bool compact = p->format == HOOKS_FORMAT_COMPACT && msg;
	bool wanted = false;
	int keyed = 0;    /* name frame built: 0 not yet, 1 done, -1 failed */
	int rendered = 0; /* body: 0 not yet, 1 done, -1 failed */
	for (int i = 0; i < p->n; i++) {
		struct pub_sock *s = &p->s[i];
		if (!hooks_want_match(&s->want, ev->type, topic ? topic->p : NULL,
				      topic ? topic->len : 0))
			continue;
		wanted = true;
		if (compact && (s->want.all & (1u << ev->type)) &&
		    !(s->want.topical & (1u << ev->type))) {
			if (batch_add(p, s, r, name) < 0) {
				s->dropped++;
				p->t_dropped++;
			}
			continue; /* counted as sent when the batch goes */
		}
		p->touched = true;
		if (keyed == 0)
			keyed = key_build(&p->key, name, strlen(name), topic) == 0 ? 1 : -1;
		int rc = keyed < 0 ? -1
			 : compact ? sock_send_compact(p, s, r)
				   : sock_send_json(p, s, r, &rendered);
		if (rc < 0) {
			s->dropped++;
			p->t_dropped++;
			continue;
		}
		p->t_sent++;
	}
	if (!wanted)
		p->t_skipped++;
	else if (compact)
		p->t_rendered++; /* each socket encodes its own copy: cheap */
}
