/*
 * pub_sock.c - the event publisher's XPUB sockets (see pub.h): binding
 * them, and the subscriptions they report, which become each socket's
 * want set and the want bits the engine thread reads.
 */
#include "hooks/pub.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

/* At shutdown the last events (the connections closed) may still be in
 * ZeroMQ's queues: they get this long to reach their subscribers, so a
 * stuck one delays the exit by at most this. */
#define PUB_LINGER_MS 250

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

void hooks_pub_sock_close(struct pub_sock *s)
{
	if (s->sock)
		zmq_close(s->sock);
	for (int t = 0; t < MIDGE_EV__COUNT; t++)
		hooks_buf_release(&s->batch[t].b);
	hooks_want_clear(&s->want);
	s->sock = NULL;
}

int hooks_pub_sock_open(void *zctx, struct pub_sock *s, const char *endpoint,
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
				hooks_pub_note(p,
					       "event publisher %s: subscription '%s' ignored: the "
					       "socket has midge_hooks_max_prefixes (%zu) prefixes "
					       "(%llu ignored so far)",
					       s->endpoint, esc, s->want.max,
					       (unsigned long long)p->t_ignored);
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
void hooks_pub_read_subs(struct hooks_publisher *p)
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
