/*
 * publisher.c - the ZeroMQ publisher and its thread (see publisher.h).
 *
 * Each configured endpoint is one XPUB socket with its own drop counter and
 * the prefixes its subscribers asked for. An event is rendered at most
 * once, and only when some socket has a subscriber whose prefix matches
 * "<name>" or "<name>/<topic>".
 *
 * Sending never blocks: ZMQ_XPUB_NODROP makes a send to a subscriber whose
 * queue is at the high-water mark fail with EAGAIN (instead of ZeroMQ
 * silently discarding it), and ZMQ_DONTWAIT turns that into an immediate
 * return, which we count as a drop.
 *
 * Who touches what: the sockets, the want sets, the render buffers and the
 * t_* counters belong to the hooks thread once it runs; the engine thread
 * has seq, the e_* counters and the producer side of the queue. They share
 * the queue's positions, the want bits (written by the hooks thread when
 * subscriptions change, read by the engine thread per event), the
 * published counters and the notes, each an atomic or under notes_mu.
 */
#include "hooks/publisher.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#endif
#include <unistd.h>

#include <uv.h>
#include <zmq.h>

#include "hooks/hooks_info.h"
#include "hooks/queue.h"
#include "hooks/render.h"
#include "hooks/want.h"

/* Records the hooks thread reads before it looks at its sockets again. */
#define PUB_BATCH 256
/* Records the engine thread puts before it checks whether the hooks thread
 * sleeps (besides once per loop pass). */
#define PUB_WAKE_EVERY 256
/* While records came this recently (ms), the hooks thread polls the queue
 * every millisecond rather than sleeping until woken. */
#define PUB_BUSY_MS 100
/* A batch of compact events goes out at this size, or at the end of the
 * round of records that filled it. */
#define PUB_BATCH_BYTES (64 * 1024)
/* At shutdown the last events (the connections closed) may still be in
 * ZeroMQ's queues: they get this long to reach their subscribers, so a
 * stuck one delays the exit by at most this. */
#define PUB_LINGER_MS 250
/* Log lines the hooks thread may leave for the engine thread. */
#define PUB_NOTES 8
#define PUB_NOTE_LEN 240

/* A batch of compact message events of one type for one socket. */
struct pub_batch {
	struct hooks_buf b;
	uint32_t count;
	size_t klen;
	uint64_t time_ms; /* of its last event */
};

struct pub_sock {
	void *sock;
	int fd;                  /* ZMQ_FD */
	uv_poll_t poll;
	struct hooks_want want;
	uint64_t dropped;    /* events this socket wanted and did not take */
	uint64_t recheck_ms; /* event time of the last retry after EAGAIN */
	struct pub_batch batch[MIDGE_EV__COUNT]; /* compact format only */
	char endpoint[256];
};

struct hooks_publisher {
	/* Set before the thread starts, read-only while it runs. */
	int n;
	struct pub_sock s[HOOKS_MAX_ENDPOINTS];
	char *node;
	enum hooks_format format;
	int nice;
	void (*want_changed)(void *ctx); /* under notes_mu: hooks_publisher_quiet */
	void *want_ctx;
	struct hooks_queue q;
	uv_thread_t thread;
	bool loop_ready;

	/* Engine thread. */
	_Alignas(HOOKS_LINE) uint64_t seq; /* events offered to the sockets */
	uint64_t e_skipped, e_dropped, e_queued;
	unsigned since_wake;

	/* Hooks thread. */
	_Alignas(HOOKS_LINE) uv_loop_t loop;
	uv_async_t wake;
	uv_idle_t more;
	uv_timer_t poll_timer;
	uint64_t busy_ms; /* loop time of the last round that read records */
	struct hooks_buf json;  /* reused for every event */
	struct hooks_buf key;   /* the name frame: "<name>" or "<name>/<topic>" */
	struct hooks_buf frame; /* a compact message event */
	uint64_t t_sent, t_rendered, t_skipped, t_dropped, t_ignored;
	bool touched; /* a ZeroMQ call since the sockets were last read */
	bool closing;

	/* Shared. */
	_Alignas(HOOKS_LINE) _Atomic uint64_t want; /* bits 0-31: all of type t; 32-63: some */
	_Atomic uint32_t want_sock[HOOKS_MAX_ENDPOINTS];
	_Atomic uint64_t a_sent, a_rendered, a_skipped, a_dropped, a_ignored;
	_Atomic size_t a_prefixes[HOOKS_MAX_ENDPOINTS];
	atomic_bool stop;
	uv_mutex_t notes_mu;
	char notes[PUB_NOTES][PUB_NOTE_LEN];
	int n_notes;
	uint64_t notes_lost;
};

void hooks_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ set-up */

/*
 * ZeroMQ binds an ipc:// endpoint by removing whatever file has its path
 * first, so a second broker would silently take a running one's event
 * socket. Something that accepts a connection there is a live socket:
 * refuse. Returns 0, or -1 with a message.
 */
static int ipc_check_free(const char *endpoint, char *err, size_t errlen)
{
	const char *path = endpoint + 6; /* after "ipc://" */
	struct sockaddr_un sa;
	if (*path == '@')
		return 0; /* Linux abstract namespace: bind itself fails when taken */
	if (strlen(path) >= sizeof sa.sun_path) {
		hooks_set_err(err, errlen, "hooks endpoint %s: path longer than %zu bytes", endpoint,
			sizeof sa.sun_path - 1);
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (rc == 0) {
		hooks_set_err(err, errlen, "hooks endpoint %s: in use (another midge?)", endpoint);
		return -1;
	}
	return 0;
}

static void sock_close(struct pub_sock *s)
{
	if (s->sock)
		zmq_close(s->sock);
	for (int t = 0; t < MIDGE_EV__COUNT; t++)
		hooks_buf_release(&s->batch[t].b);
	hooks_want_clear(&s->want);
	s->sock = NULL;
}

static int sock_open(void *zctx, struct pub_sock *s, const char *endpoint,
		     const struct hooks_config *cfg, char *err, size_t errlen)
{
	int hwm = cfg->sndhwm > 0 ? cfg->sndhwm : HOOKS_DEFAULT_SNDHWM;
	int linger = PUB_LINGER_MS, one = 1;
	size_t len = sizeof s->fd;
	hooks_want_init(&s->want, cfg->max_prefixes);
	if (strncmp(endpoint, "ipc://", 6) == 0 && ipc_check_free(endpoint, err, errlen) < 0)
		return -1;
	s->sock = zmq_socket(zctx, ZMQ_XPUB);
	if (!s->sock)
		goto fail;
	if (zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
	    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
	    zmq_setsockopt(s->sock, ZMQ_XPUB_NODROP, &one, sizeof one) != 0)
		goto fail;
	if (cfg->curve_secret &&
	    (zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	     zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, cfg->curve_secret,
			    strlen(cfg->curve_secret) + 1) != 0))
		goto fail;
	if (zmq_bind(s->sock, endpoint) != 0)
		goto fail;
	if (zmq_getsockopt(s->sock, ZMQ_FD, &s->fd, &len) != 0)
		goto fail;
	len = sizeof s->endpoint;
	if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0)
		snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
	return 0;
fail:
	hooks_set_err(err, errlen, "hooks endpoint %s: %s", endpoint, zmq_strerror(zmq_errno()));
	return -1;
}

/* ------------------------------------------------------------ hooks thread */

/* Leaves a line for the engine thread's log (the log is not ours). */
static void pub_note(struct hooks_publisher *p, const char *fmt, ...)
{
	uv_mutex_lock(&p->notes_mu);
	if (p->n_notes < PUB_NOTES) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->notes[p->n_notes++], PUB_NOTE_LEN, fmt, ap);
		va_end(ap);
	} else {
		p->notes_lost++;
	}
	uv_mutex_unlock(&p->notes_mu);
}

/* A prefix for a log line: printable ASCII as it is, the rest as \xHH,
 * at most 64 bytes of it. */
static void escape_prefix(char *out, size_t cap, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < 64 && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	if (n > 64 && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Publishes the want bits after a socket's prefixes changed. */
static void pub_publish_want(struct hooks_publisher *p)
{
	uint64_t all = 0, some = 0;
	for (int i = 0; i < p->n; i++) {
		struct hooks_want *w = &p->s[i].want;
		all |= w->all;
		some |= w->some;
		atomic_store_explicit(&p->want_sock[i], w->all | w->some, memory_order_relaxed);
		atomic_store_explicit(&p->a_prefixes[i], w->n, memory_order_release);
	}
	uint64_t now = all | some << 32;
	uint64_t was = atomic_exchange_explicit(&p->want, now, memory_order_acq_rel);
	if (was == now)
		return;
	uv_mutex_lock(&p->notes_mu);
	if (p->want_changed)
		p->want_changed(p->want_ctx);
	uv_mutex_unlock(&p->notes_mu);
}

void hooks_publisher_quiet(struct hooks_publisher *p)
{
	uv_mutex_lock(&p->notes_mu);
	p->want_changed = NULL;
	uv_mutex_unlock(&p->notes_mu);
}

/*
 * Reads every pending subscription message of a socket without blocking.
 * Without ZMQ_XPUB_VERBOSE, XPUB reports a prefix when its first
 * subscriber subscribes and again (as an unsubscription) when its last one
 * leaves or disconnects, so the set mirrors what the subscribers want.
 * Returns whether the set changed.
 */
static bool sock_read_subs(struct hooks_publisher *p, int i)
{
	struct pub_sock *s = &p->s[i];
	bool changed = false;
	zmq_msg_t m;
	for (;;) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return changed;
		}
		const char *d = zmq_msg_data(&m);
		size_t n = zmq_msg_size(&m);
		if (n >= 1 && d[0] == 1) {
			enum hooks_want_add r = hooks_want_add(&s->want, d + 1, n - 1);
			changed |= r == HOOKS_WANT_ADDED;
			if (r == HOOKS_WANT_IGNORED) {
				char esc[300];
				escape_prefix(esc, sizeof esc, d + 1, n - 1);
				p->t_ignored++;
				atomic_store_explicit(&p->a_ignored, p->t_ignored, memory_order_relaxed);
				pub_note(p,
					 "event publisher %s: subscription '%s' ignored: the socket "
					 "has midge_hooks_max_prefixes (%zu) prefixes (%llu ignored "
					 "so far)",
					 s->endpoint, esc, s->want.max, (unsigned long long)p->t_ignored);
			}
		} else if (n >= 1 && d[0] == 0) {
			size_t before = s->want.n;
			hooks_want_remove(&s->want, d + 1, n - 1);
			changed |= s->want.n != before;
		}
		zmq_msg_close(&m);
	}
}

/* ZMQ_FD is edge-triggered: after reading, ask ZMQ_EVENTS again, and go
 * on until it says nothing is ready, or a change arriving meanwhile
 * would wait for the next edge. */
static void pub_read_subs(struct hooks_publisher *p)
{
	bool changed = false;
	p->touched = false;
	for (int i = 0; i < p->n; i++) {
		bool ch = false;
		for (;;) {
			int ev = 0;
			size_t len = sizeof(ev);
			if (zmq_getsockopt(p->s[i].sock, ZMQ_EVENTS, &ev, &len) != 0 ||
			    !(ev & ZMQ_POLLIN))
				break;
			ch |= sock_read_subs(p, i);
		}
		if (ch)
			hooks_want_rebuild(&p->s[i].want);
		changed |= ch;
	}
	if (changed)
		pub_publish_want(p);
}

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

/* Sends every batch that has events (the end of a round of records). */
static void pub_send_batches(struct hooks_publisher *p)
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

/* Offers one event to every socket whose subscribers want it. */
static void pub_send(struct hooks_publisher *p, const struct hooks_rec_view *r)
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

/* The counters other threads read, after a batch. */
static void pub_publish_counts(struct hooks_publisher *p)
{
	atomic_store_explicit(&p->a_sent, p->t_sent, memory_order_relaxed);
	atomic_store_explicit(&p->a_rendered, p->t_rendered, memory_order_relaxed);
	atomic_store_explicit(&p->a_skipped, p->t_skipped, memory_order_relaxed);
	atomic_store_explicit(&p->a_dropped, p->t_dropped, memory_order_relaxed);
}

/* Reads at most max records (all of them when max is 0). Returns whether
 * records are left. */
static bool pub_drain(struct hooks_publisher *p, unsigned max)
{
	struct hooks_rec_view r;
	unsigned n = 0;
	while ((max == 0 || n < max) && hooks_queue_peek(&p->q, &r)) {
		if (r.kind == HOOKS_REC_DROPS) {
			for (int i = 0; i < p->n; i++)
				p->s[i].dropped += r.drops[i];
		} else {
			pub_send(p, &r);
		}
		n++;
		/* The tail goes out with the batch's last record (below), or
		 * now and then in a long one, so the engine can reuse space. */
		hooks_queue_pop(&p->q, n % 64 == 0);
	}
	pub_send_batches(p);
	/* Counts first: whoever sees the tail (hooks_publisher_idle) sees
	 * them count what it covers. */
	pub_publish_counts(p);
	hooks_queue_publish(&p->q);
	return hooks_queue_ready(&p->q);
}

static void pub_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void pub_on_more(uv_idle_t *h);
static void pub_on_timer(uv_timer_t *h);

static void pub_shutdown(struct hooks_publisher *p)
{
	if (p->closing)
		return;
	p->closing = true;
	/* The engine thread waits in join: what it queued is all there is. */
	pub_drain(p, 0);
	if (p->touched)
		pub_read_subs(p);
	uv_close((uv_handle_t *)&p->wake, pub_close_cb);
	uv_close((uv_handle_t *)&p->more, pub_close_cb);
	uv_close((uv_handle_t *)&p->poll_timer, pub_close_cb);
	for (int i = 0; i < p->n; i++)
		uv_close((uv_handle_t *)&p->s[i].poll, pub_close_cb);
}

/*
 * One round of work: a batch of records, then the sockets' subscriptions
 * if a ZeroMQ call may have consumed their edge. With records left, the
 * idle handle brings us back after one look at the sockets.
 *
 * With none left, while events flow (some came in the last PUB_BUSY_MS)
 * we look again in a millisecond instead of asking to be woken: a wake-up
 * is a system call on the engine thread (about a microsecond on a virtual
 * machine), once per loop pass, and a timer of ours costs the engine
 * nothing. Once quiet, we say we sleep and look once more: the engine
 * thread wakes a sleeper only (pub_wake()), and sequentially consistent
 * operations on both sides make sure that either it sees us asleep or we
 * see its record.
 */
static void pub_round(struct hooks_publisher *p)
{
	if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
		pub_shutdown(p);
		return;
	}
	atomic_store_explicit(&p->q.sleeping, false, memory_order_relaxed);
	uint64_t before = p->q.rpos;
	bool left = pub_drain(p, PUB_BATCH);
	uint64_t now = uv_now(&p->loop);
	if (p->q.rpos != before)
		p->busy_ms = now;
	if (p->touched)
		pub_read_subs(p);
	if (left) {
		uv_idle_start(&p->more, pub_on_more);
		return;
	}
	uv_idle_stop(&p->more);
	if (now - p->busy_ms < PUB_BUSY_MS) {
		uv_timer_start(&p->poll_timer, pub_on_timer, 1, 0);
		return;
	}
	atomic_store_explicit(&p->q.sleeping, true, memory_order_seq_cst);
	if (hooks_queue_ready_sc(&p->q)) {
		atomic_store_explicit(&p->q.sleeping, false, memory_order_relaxed);
		uv_idle_start(&p->more, pub_on_more);
	}
}

static void pub_on_timer(uv_timer_t *h)
{
	pub_round(h->data);
}

static void pub_on_more(uv_idle_t *h)
{
	pub_round(h->data);
}

static void pub_on_wake(uv_async_t *h)
{
	pub_round(h->data);
}

/* A socket's ZMQ_FD: subscriptions changed, most likely. */
static void pub_on_fd(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct hooks_publisher *p = h->data;
	pub_read_subs(p);
}

static void pub_main(void *arg)
{
	struct hooks_publisher *p = arg;
#ifdef __linux__
	prctl(PR_SET_NAME, "midge-hooks", 0, 0, 0); /* for top -H and perf */
	/* Observation may come after the traffic it observes: at a nice
	 * value above the broker's, when the cores are busy the broker's
	 * thread gets them first and this one what is left, dropping (and
	 * counting) what it cannot send. The value is relative to the
	 * broker's own (a broker started under nice or systemd's Nice= keeps
	 * the same gap). Linux applies a nice value per thread; failing to
	 * set it changes nothing else. */
	if (p->nice > 0) {
		errno = 0;
		int base = getpriority(PRIO_PROCESS, 0);
		int want = errno ? p->nice : base + p->nice;
		if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), want > 19 ? 19 : want) != 0)
			(void)0;
	}
#endif
	/* Subscribers may have come before the thread ran. */
	pub_read_subs(p);
	pub_round(p);
	uv_run(&p->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------ engine thread */

/* Everything but the struct, its counters and notes. */
static void pub_release(struct hooks_publisher *p)
{
	for (int i = 0; i < p->n; i++)
		sock_close(&p->s[i]);
	hooks_queue_free(&p->q);
	hooks_buf_release(&p->json);
	hooks_buf_release(&p->key);
	hooks_buf_release(&p->frame);
}

void hooks_publisher_free(struct hooks_publisher *p)
{
	if (!p)
		return;
	pub_release(p);
	uv_mutex_destroy(&p->notes_mu);
	free(p->node);
	free(p);
}

/* The loop and handles of the hooks thread, made here and handed over
 * with the thread's start. */
static int pub_loop_init(struct hooks_publisher *p)
{
	if (uv_loop_init(&p->loop) < 0)
		return -1;
	p->loop_ready = true;
	uv_async_init(&p->loop, &p->wake, pub_on_wake);
	p->wake.data = p;
	uv_idle_init(&p->loop, &p->more);
	p->more.data = p;
	uv_timer_init(&p->loop, &p->poll_timer);
	p->poll_timer.data = p;
	for (int i = 0; i < p->n; i++) {
		if (uv_poll_init(&p->loop, &p->s[i].poll, p->s[i].fd) < 0)
			return -1;
		p->s[i].poll.data = p;
		uv_poll_start(&p->s[i].poll, UV_READABLE, pub_on_fd);
	}
	return 0;
}

static void pub_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, pub_close_cb);
}

/* Closes the hooks thread's loop once the thread is gone (or never ran). */
static void pub_loop_close(struct hooks_publisher *p)
{
	if (!p->loop_ready)
		return;
	p->loop_ready = false;
	uv_walk(&p->loop, pub_walk_close, NULL);
	while (uv_run(&p->loop, UV_RUN_NOWAIT) != 0)
		;
	uv_loop_close(&p->loop);
}

struct hooks_publisher *hooks_publisher_start(void *zctx, const struct hooks_config *cfg,
					      char *err, size_t errlen)
{
	struct hooks_publisher *p = calloc(1, sizeof *p);
	if (!p) {
		hooks_set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (uv_mutex_init(&p->notes_mu) != 0) {
		free(p);
		hooks_set_err(err, errlen, "cannot create a mutex");
		return NULL;
	}
	p->format = cfg->format;
	p->nice = cfg->nice > 19 ? 19 : cfg->nice;
	p->want_changed = cfg->want_changed;
	p->want_ctx = cfg->want_ctx;
	if (cfg->node && !(p->node = strdup(cfg->node)))
		goto oom;
	size_t qbytes = cfg->queue_bytes ? cfg->queue_bytes : HOOKS_DEFAULT_QUEUE_BYTES;
	if (hooks_queue_init(&p->q, qbytes, &cfg->holder) < 0)
		goto oom;
	for (int i = 0; i < cfg->n_endpoints; i++) {
		p->n = i + 1;
		if (sock_open(zctx, &p->s[i], cfg->endpoints[i], cfg, err, errlen) < 0) {
			hooks_publisher_free(p);
			return NULL;
		}
	}
	if (pub_loop_init(p) < 0) {
		hooks_set_err(err, errlen, "event publisher: cannot set up its loop");
		goto fail_loop;
	}
	/* From here on the sockets are the thread's (thread creation orders
	 * everything written so far before anything it does). */
	if (uv_thread_create(&p->thread, pub_main, p) != 0) {
		hooks_set_err(err, errlen, "event publisher: cannot start its thread");
		goto fail_loop;
	}
	return p;
fail_loop:
	pub_loop_close(p);
	hooks_publisher_free(p);
	return NULL;
oom:
	hooks_set_err(err, errlen, "out of memory");
	hooks_publisher_free(p);
	return NULL;
}

void hooks_publisher_stop(struct hooks_publisher *p)
{
	if (!p)
		return;
	atomic_store_explicit(&p->stop, true, memory_order_release);
	uv_async_send(&p->wake);
	uv_thread_join(&p->thread);
	/* The thread is gone: its sockets and loop are ours again. */
	pub_loop_close(p);
	pub_release(p);
}

/* Wakes the hooks thread if it sleeps (see pub_round()). */
static void pub_wake(struct hooks_publisher *p)
{
	p->since_wake = 0;
	/* A sequentially consistent read-modify-write of head against the
	 * sleeper's store of `sleeping` and load of head (pub_round): one of
	 * us sees the other. (No fence: ThreadSanitizer does not model them.) */
	atomic_fetch_add_explicit(&p->q.head, 0, memory_order_seq_cst);
	if (atomic_load_explicit(&p->q.sleeping, memory_order_seq_cst))
		uv_async_send(&p->wake);
}

/*
 * The engine thread's part of an event: every event gets a sequence
 * number (the `seq` a socket's consumers see grows by one per event,
 * sent or not); one that no socket may want is counted and costs nothing
 * more. A record that does not fit is a drop for every socket that wanted
 * the event, told to the consumer with the next record.
 */
void hooks_publisher_emit(struct hooks_publisher *p, const struct midge_event *ev, void *msg)
{
	uint64_t seq = ++p->seq;
	uint64_t bit = (uint64_t)1 << ev->type;
	uint64_t want = atomic_load_explicit(&p->want, memory_order_relaxed);
	if (!(want & (bit | bit << 32))) {
		p->e_skipped++;
		return;
	}
	if (hooks_queue_put(&p->q, ev, msg, seq) < 0) {
		uint32_t socks = 0;
		for (int i = 0; i < p->n; i++)
			if (atomic_load_explicit(&p->want_sock[i], memory_order_relaxed) & (uint32_t)bit)
				socks |= 1u << i;
		hooks_queue_drop(&p->q, socks);
		p->e_dropped++;
		/* The thread is behind, not asleep (or the periodic wake-up
		 * below and the loop pass's will reach it). */
		if (++p->since_wake >= PUB_WAKE_EVERY)
			pub_wake(p);
		return;
	}
	p->e_queued++;
	if (++p->since_wake >= PUB_WAKE_EVERY)
		pub_wake(p);
}

void hooks_publisher_flush(struct hooks_publisher *p)
{
	hooks_queue_reclaim(&p->q);
	if (p->since_wake)
		pub_wake(p);
}

uint32_t hooks_publisher_types(const struct hooks_publisher *p)
{
	uint64_t w = atomic_load_explicit(&((struct hooks_publisher *)p)->want, memory_order_relaxed);
	return (uint32_t)(w | w >> 32);
}

void hooks_publisher_counts(const struct hooks_publisher *p, struct hooks_counts *c)
{
	c->sent = atomic_load_explicit(&p->a_sent, memory_order_relaxed);
	c->rendered = atomic_load_explicit(&p->a_rendered, memory_order_relaxed);
	c->skipped = p->e_skipped + atomic_load_explicit(&p->a_skipped, memory_order_relaxed);
	c->dropped = p->e_dropped + atomic_load_explicit(&p->a_dropped, memory_order_relaxed);
	c->ignored = atomic_load_explicit(&p->a_ignored, memory_order_relaxed);
	c->queued = p->e_queued;
}

int hooks_publisher_count(const struct hooks_publisher *p)
{
	return p ? p->n : 0;
}

const char *hooks_publisher_endpoint(const struct hooks_publisher *p, int i)
{
	return p && i >= 0 && i < p->n ? p->s[i].endpoint : NULL;
}

size_t hooks_publisher_prefixes(const struct hooks_publisher *p, int i)
{
	if (!p || i < 0 || i >= p->n)
		return 0;
	return atomic_load_explicit(&p->a_prefixes[i], memory_order_acquire);
}

bool hooks_publisher_idle(struct hooks_publisher *p, int timeout_ms)
{
	for (int waited = 0;; waited++) {
		hooks_publisher_flush(p);
		if (!hooks_queue_busy(&p->q)) {
			hooks_queue_reclaim(&p->q);
			return true;
		}
		if (waited >= timeout_ms)
			return false;
		uv_sleep(1);
	}
}

void hooks_publisher_notes(struct hooks_publisher *p, void (*cb)(void *ctx, const char *line),
			   void *ctx)
{
	char lines[PUB_NOTES][PUB_NOTE_LEN];
	uv_mutex_lock(&p->notes_mu);
	int n = p->n_notes;
	uint64_t lost = p->notes_lost;
	memcpy(lines, p->notes, sizeof lines);
	p->n_notes = 0;
	p->notes_lost = 0;
	uv_mutex_unlock(&p->notes_mu);
	for (int i = 0; i < n; i++)
		cb(ctx, lines[i]);
	if (lost) {
		char more[96];
		snprintf(more, sizeof more, "event publisher: %llu more such lines not logged",
			 (unsigned long long)lost);
		cb(ctx, more);
	}
}
