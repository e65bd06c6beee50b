/*
 * link.c - a bridge link's connection lifetime (bridge/link.h): resolve,
 * non-blocking connect over the address list, TLS, failure and restart
 * with backoff, fail-over and fail-back, start types, the once-a-second
 * timer (connect timeout, keepalive, idle_timeout), and the set of links.
 * The MQTT session on a connected socket is session.c's.
 */
#include "bridge/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "engine/bridge.h"
#include "engine/engine.h"
#include "transport/log.h"

static void link_on_timer(uv_timer_t *t);
static void link_on_poll(uv_poll_t *p, int status, int events);
static void link_on_kick(uv_idle_t *h);

static void link_close_socket(struct link *l)
{
	if (l->tls) {
		gnutls_deinit(l->tls);
		l->tls = NULL;
	}
	if (l->poll_open) {
		uv_poll_stop(&l->poll);
		uv_close((uv_handle_t *)&l->poll, NULL);
		l->poll_open = false;
	}
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	l->out_len = l->out_off = 0;
	l->in_len = 0;
}

/* The delay before the next attempt: base doubled per failure, at most
 * cap (restart_timeout BASE CAP; one value: always that). */
static uint64_t link_backoff_ms(struct link *l)
{
	uint64_t d = l->cf->restart_base;
	for (uint32_t i = 1; i < l->failures && d < l->cf->restart_cap; i++)
		d *= 2;
	if (d > l->cf->restart_cap)
		d = l->cf->restart_cap;
	return d * 1000u;
}

/* The link is down: the socket goes, the engine keeps the messages, and
 * the next attempt is timed (none for start_type once, none for lazy
 * until the threshold is met again). */
static void link_down(struct link *l, bool was_up)
{
	bool up = l->state == LINK_UP;
	link_close_socket(l);
	uv_timer_stop(&l->timer);
	if (l->gai_busy)
		uv_cancel((uv_req_t *)&l->gai);
	if (up) {
		engine_bridge_down(l->eb);
		link_notify_local(l, false);
	}
	l->state = LINK_IDLE;
	l->state_since = link_now();
	if (l->stopping)
		return;
	if (l->cf->start_type == BRIDGE_START_ONCE) {
		log_notice("bridge %s: start_type once: not reconnecting", l->cf->name);
		return;
	}
	/* the next address: on failure always; after a working connection
	 * only with round_robin (else the primary first again) */
	if (was_up && !l->cf->round_robin)
		l->addr_idx = 0;
	else
		l->addr_idx = (l->addr_idx + 1) % l->cf->n_addrs;
	if (l->cf->start_type == BRIDGE_START_LAZY && was_up)
		return; /* lazy: again once enough is queued */
	l->failures++;
	uint64_t d = link_backoff_ms(l);
	uv_timer_start(&l->timer, link_on_timer, d, 0);
}

void link_fail(struct link *l, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	const struct bridge_addr *a = &l->cf->addrs[l->addr_idx];
	bool was_up = l->state == LINK_UP;
	log_warn("bridge %s: %s:%u: %s%s", l->cf->name, a->host, a->port, why,
		 l->cf->start_type == BRIDGE_START_ONCE ? "" : " (will retry)");
	link_down(l, was_up);
}

/* ---- connecting --------------------------------------------------------- */

void link_poll_update(struct link *l)
{
	if (!l->poll_open)
		return;
	int ev = UV_READABLE;
	if (l->state == LINK_CONNECTING || l->out_off < l->out_len)
		ev |= UV_WRITABLE;
	if (l->state == LINK_TLS)
		ev = gnutls_record_get_direction(l->tls) ? UV_WRITABLE : UV_READABLE;
	uv_poll_start(&l->poll, ev, link_on_poll);
}

static int link_tls_start(struct link *l)
{
	const struct bridge_addr *a = &l->cf->addrs[l->addr_idx];
	int rc = gnutls_init(&l->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (rc < 0)
		return rc;
	if ((rc = gnutls_set_default_priority(l->tls)) < 0 ||
	    (rc = gnutls_credentials_set(l->tls, GNUTLS_CRD_CERTIFICATE, l->creds)) < 0)
		return rc;
	unsigned char ip[16];
	if (inet_pton(AF_INET, a->host, ip) != 1 && inet_pton(AF_INET6, a->host, ip) != 1)
		gnutls_server_name_set(l->tls, GNUTLS_NAME_DNS, a->host, strlen(a->host)); /* SNI */
	/* the chain always; the host name unless bridge_insecure */
	gnutls_session_set_verify_cert(l->tls, l->cf->insecure ? NULL : a->host, 0);
	gnutls_transport_set_int(l->tls, l->fd);
	gnutls_handshake_set_timeout(l->tls, 0);
	l->state = LINK_TLS;
	l->state_since = link_now();
	return 0;
}

static void link_tls_step(struct link *l)
{
	int rc = gnutls_handshake(l->tls);
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		link_poll_update(l);
		return;
	}
	if (rc < 0) {
		if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t d;
			unsigned st = gnutls_session_get_verify_cert_status(l->tls);
			if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &d, 0) == 0) {
				link_fail(l, "TLS: the remote's certificate: %s", (const char *)d.data);
				gnutls_free(d.data);
				return;
			}
		}
		link_fail(l, "TLS handshake: %s", gnutls_strerror(rc));
		return;
	}
	link_send_connect(l);
}

/* The non-blocking connect finished (writable). */
static void link_connected(struct link *l)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		link_fail(l, "connect: %s", strerror(err));
		return;
	}
	if (l->cf->cafile || l->cf->capath) {
		int rc = link_tls_start(l);
		if (rc < 0) {
			link_fail(l, "TLS: %s", gnutls_strerror(rc));
			return;
		}
		link_tls_step(l);
		return;
	}
	link_send_connect(l);
}

static void link_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct link *l = req->data;
	l->gai_busy = false;
	if (status == UV_ECANCELED || l->stopping) {
		uv_freeaddrinfo(res);
		return;
	}
	if (status < 0 || !res) {
		uv_freeaddrinfo(res);
		link_fail(l, "cannot resolve: %s", uv_strerror(status));
		return;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		uv_freeaddrinfo(res);
		link_fail(l, "socket: %s", strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = connect(fd, res->ai_addr, res->ai_addrlen);
	uv_freeaddrinfo(res);
	l->fd = fd;
	if (rc < 0 && errno != EINPROGRESS) {
		link_fail(l, "connect: %s", strerror(errno));
		return;
	}
	if (uv_poll_init_socket(l->bs->loop, &l->poll, fd) < 0) {
		link_fail(l, "cannot poll the socket");
		return;
	}
	l->poll.data = l;
	l->poll_open = true;
	l->state = LINK_CONNECTING;
	l->state_since = link_now();
	link_poll_update(l);
}

/* An attempt at the current address. */
static void link_connect_next(struct link *l)
{
	const struct bridge_addr *a = &l->cf->addrs[l->addr_idx];
	char port[8];
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(port, sizeof port, "%u", a->port);
	l->gai.data = l;
	l->state = LINK_RESOLVING;
	l->state_since = link_now();
	log_info("bridge %s: connecting to %s:%u", l->cf->name, a->host, a->port);
	int rc = uv_getaddrinfo(l->bs->loop, &l->gai, link_on_resolved, a->host, port, &hints);
	if (rc < 0) {
		link_fail(l, "cannot resolve: %s", uv_strerror(rc));
		return;
	}
	l->gai_busy = true;
}

/* An attempt now, with the once-a-second timer watching it. */
static void link_attempt(struct link *l)
{
	uv_timer_start(&l->timer, link_on_timer, 1000, 1000);
	link_connect_next(l);
}

static void link_on_poll(uv_poll_t *p, int status, int events)
{
	struct link *l = p->data;
	if (status < 0 && l->state == LINK_CONNECTING) {
		link_connected(l);
		return;
	}
	if (status < 0 && (l->state == LINK_CONNACK || l->state == LINK_UP)) {
		link_read(l); /* libuv says EBADF for POLLERR: the read says what it was */
		if (l->fd >= 0)
			link_fail(l, "the connection failed");
		return;
	}
	if (status < 0) {
		link_fail(l, "socket: %s", uv_strerror(status));
		return;
	}
	switch (l->state) {
	case LINK_CONNECTING:
		if (events & UV_WRITABLE)
			link_connected(l);
		return;
	case LINK_TLS:
		link_tls_step(l);
		return;
	case LINK_CONNACK:
	case LINK_UP:
		if (events & UV_WRITABLE && link_flush(l) < 0)
			return;
		if (events & UV_READABLE)
			link_read(l);
		if (l->state == LINK_UP)
			link_pump(l);
		return;
	default:
		return;
	}
}

static void link_on_kick(uv_idle_t *h)
{
	struct link *l = h->data;
	uv_idle_stop(h);
	if (l->state == LINK_UP) {
		if (l->tls && gnutls_record_check_pending(l->tls))
			link_read(l); /* decrypted input the poller cannot see */
		link_pump(l);
	} else if (l->state == LINK_IDLE && l->cf->start_type == BRIDGE_START_LAZY && !l->stopping &&
		   !uv_is_active((uv_handle_t *)&l->timer) &&
		   engine_bridge_pending(l->eb) >= l->cf->threshold) {
		log_notice("bridge %s: %u messages queued (threshold %u): connecting", l->cf->name,
			   engine_bridge_pending(l->eb), l->cf->threshold);
		link_attempt(l);
	}
}

void link_kick(struct link *l)
{
	uv_idle_start(&l->kick, link_on_kick);
}

/* engine_bridge_ready_cb: during routing, so only noted. */
static void link_ready(void *ctx)
{
	struct link *l = ctx;
	if (!l->stopping)
		link_kick(l);
}

/* Once a second while connecting or up (and the restart delay). */
static void link_on_timer(uv_timer_t *t)
{
	struct link *l = t->data;
	uint64_t now = link_now();
	if (l->stopping)
		return;
	if (l->state == LINK_IDLE) {
		link_attempt(l);
		return;
	}
	if (l->state != LINK_UP) {
		if (now - l->state_since > LINK_CONNECT_TIMEOUT_MS)
			link_fail(l, "no answer within %u s", LINK_CONNECT_TIMEOUT_MS / 1000);
		return;
	}
	uint64_t ka = (uint64_t)l->cf->keepalive * 1000u;
	if (now - l->last_in > ka + ka / 2) { /* [MQTT-3.1.2-24] the remote's side of it */
		link_fail(l, "the remote did not answer within 1.5 x keepalive_interval");
		return;
	}
	if (now - l->last_out >= ka && !l->ping_out) {
		l->ping_out = true;
		link_send_bare(l, CODEC_PINGREQ);
		return;
	}
	if (l->cf->start_type == BRIDGE_START_LAZY && engine_bridge_pending(l->eb) == 0 &&
	    now - l->last_msg >= (uint64_t)l->cf->idle_timeout * 1000u) {
		log_notice("bridge %s: idle for %u s (idle_timeout): disconnecting", l->cf->name,
			   l->cf->idle_timeout);
		link_send_bare(l, CODEC_DISCONNECT);
		uv_timer_stop(&l->timer);
		link_down(l, true);
	}
}

/* ---- the set ------------------------------------------------------------ */

static int link_creds(struct link *l, char *err, size_t errlen)
{
	const struct bridge_conf *cf = l->cf;
	int rc = gnutls_certificate_allocate_credentials(&l->creds);
	const char *what = "credentials";
	if (rc >= 0 && cf->cafile) {
		what = cf->cafile;
		rc = gnutls_certificate_set_x509_trust_file(l->creds, cf->cafile, GNUTLS_X509_FMT_PEM);
		if (rc == 0)
			rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
	}
	if (rc >= 0 && cf->capath) {
		what = cf->capath;
		rc = gnutls_certificate_set_x509_trust_dir(l->creds, cf->capath, GNUTLS_X509_FMT_PEM);
		if (rc == 0)
			rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
	}
	if (rc >= 0 && cf->certfile) {
		what = cf->certfile;
		rc = gnutls_certificate_set_x509_key_file(l->creds, cf->certfile, cf->keyfile,
							  GNUTLS_X509_FMT_PEM);
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: connection %s: %s: %s", cf->where ? cf->where : "bridge",
			 cf->name, what, gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

struct bridges *bridges_new(uv_loop_t *loop, struct engine *e, const struct bridge_confs *cfg,
			    uint16_t window, uint32_t max_in, char *err, size_t errlen)
{
	struct bridges *bs = calloc(1, sizeof *bs);
	if (!bs || (cfg->n && !(bs->links = calloc((size_t)cfg->n, sizeof *bs->links)))) {
		free(bs);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	bs->loop = loop;
	bs->e = e;
	bs->window = window ? window : 20;
	if (bs->window > LINK_MAX_WINDOW)
		bs->window = LINK_MAX_WINDOW;
	bs->max_in = max_in ? max_in : CODEC_MAX_REMAINING + CODEC_MAX_FIXED_HEADER;
	for (int i = 0; i < cfg->n; i++) {
		struct link *l = &bs->links[i];
		const struct bridge_conf *cf = &cfg->v[i];
		l->bs = bs;
		l->cf = cf;
		l->fd = -1;
		bridge_conf_remote_clientid(cf, l->remote_id, sizeof l->remote_id);
		bridge_conf_local_clientid(cf, l->local_id, sizeof l->local_id);
		bridge_conf_notification_topic(cf, l->note_topic, sizeof l->note_topic);
		bs->n = i + 1; /* bridges_free() sees it from now on */
		l->eb = engine_bridge_add(e, cf->name, l->local_id, link_ready, l);
		if (!l->eb) {
			snprintf(err, errlen, "%s: connection %s: cannot declare the bridge",
				 cf->where ? cf->where : "bridge", cf->name);
			goto fail;
		}
		engine_bridge_set_answer(l->eb, link_answer, l);
		for (int k = 0; k < cf->n_topics; k++) {
			const struct bridge_topic *t = &cf->topics[k];
			if ((t->dir & BRIDGE_OUT) && engine_bridge_subscribe(l->eb, t->local_filter, t->qos) < 0) {
				snprintf(err, errlen, "%s: connection %s: topic %s: cannot subscribe",
					 cf->where ? cf->where : "bridge", cf->name, t->local_filter);
				goto fail;
			}
		}
	}
	return bs;
fail:
	bridges_free(bs);
	return NULL;
}

int bridges_start(struct bridges *bs, char *err, size_t errlen)
{
	for (int i = 0; i < bs->n; i++) {
		struct link *l = &bs->links[i];
		if ((l->cf->cafile || l->cf->capath) && link_creds(l, err, errlen) < 0)
			return -1;
		uv_timer_init(bs->loop, &l->timer);
		l->timer.data = l;
		uv_idle_init(bs->loop, &l->kick);
		l->kick.data = l;
		if (l->cf->start_type == BRIDGE_START_LAZY) {
			link_ready(l); /* what was restored may pass the threshold */
			continue;
		}
		uv_timer_start(&l->timer, link_on_timer, 0, 0);
	}
	return 0;
}

void bridges_stop(struct bridges *bs)
{
	if (!bs)
		return;
	for (int i = 0; i < bs->n; i++) {
		struct link *l = &bs->links[i];
		if (!l->timer.loop)
			continue; /* never started */
		if (l->state == LINK_UP)
			link_send_bare(l, CODEC_DISCONNECT);
		l->stopping = true;
		link_down(l, l->state == LINK_UP);
		uv_close((uv_handle_t *)&l->timer, NULL);
		uv_close((uv_handle_t *)&l->kick, NULL);
	}
}

void bridges_free(struct bridges *bs)
{
	if (!bs)
		return;
	for (int i = 0; i < bs->n; i++) {
		struct link *l = &bs->links[i];
		if (l->eb) { /* the engine outlives the link */
			engine_bridge_set_ready(l->eb, NULL, NULL);
			engine_bridge_set_answer(l->eb, NULL, NULL);
		}
		if (l->creds)
			gnutls_certificate_free_credentials(l->creds);
		free(l->out);
		free(l->in);
	}
	free(bs->links);
	free(bs);
}
