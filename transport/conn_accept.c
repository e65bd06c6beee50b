/*
 * conn_accept.c - a connection's beginning, on the engine thread: the
 * limits that refuse it (max_connections, midge_max_pending_connects),
 * its peer address, its layer stack (with the callbacks through which
 * the layers report from the I/O thread), its engine connection, and the
 * hand-off of the socket to an I/O thread.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/conn_internal.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/proxy.h"
#include "transport/tls.h"
#include "transport/ws.h"
#include "transport/xport.h"
#include "transport/zauth.h"

/* Fills c's peer address from what accept() returned. */
static void conn_set_peer(struct conn *c, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_UNIX) {
		c->af_unix = 1;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		c->af_known = 1;
		c->af6 = 1;
		memcpy(c->addr, &a->sin6_addr, 16);
		c->port = ntohs(a->sin6_port);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		c->af_known = 1;
		memcpy(c->addr, &a->sin_addr, 4);
		c->port = ntohs(a->sin_port);
	}
}

/* use_identity_as_username / use_subject_as_username, on the I/O thread
 * at the end of the TLS handshake: what it proved (certificate CN or
 * subject, PSK identity) goes to the engine ahead of any input. */
static int conn_tls_identity(void *owner, const char *proved)
{
	struct conn *c = owner;
	if (!proved)
		return -1;
	char *name = strdup(proved);
	if (!name)
		return -1;
	struct ioq_rec r = {.op = IO_IDENTITY, .conn = c, .p = name};
	iothr_report(sock_io(c), &r);
	return 0;
}

/* On the I/O thread at the end of a TLS handshake that verified a client
 * certificate (only with auth workers: their connect and auth requests
 * carry it): subject and fingerprint go to the engine ahead of any input. */
static int conn_tls_cert(void *owner, const char *subject, const char *fingerprint)
{
	struct conn *c = owner;
	size_t ls = subject ? strlen(subject) : 0, lf = strlen(fingerprint);
	char *p = malloc(ls + lf + 2);
	if (!p)
		return -1;
	memcpy(p, subject ? subject : "", ls + 1);
	memcpy(p + ls + 1, fingerprint, lf + 1);
	struct ioq_rec r = {.op = IO_CERT, .conn = c, .p = p};
	iothr_report(sock_io(c), &r);
	return 0;
}

/* The certificate the proxy verified, for the auth workers: its subject
 * as "CN=<common name>" (RFC 4514 escaping), no fingerprint (a PROXY
 * header carries none). */
static int conn_proxy_cert(struct conn *c, const char *cn)
{
	char subject[3 + 2 * 255 + 1] = "CN=";
	size_t n = 3;
	for (const char *q = cn; *q; q++) {
		bool edge = (q == cn && (*q == ' ' || *q == '#')) || (q[1] == '\0' && *q == ' ');
		if (edge || strchr(",+\"\\<>;=", *q))
			subject[n++] = '\\';
		subject[n++] = *q;
	}
	subject[n] = '\0';
	return conn_tls_cert(c, subject, "");
}

/* On the I/O thread: the PROXY header named the real client. The socket
 * half's address fields take it (its log lines), the engine hears it in
 * a record. */
static int conn_proxy_peer(void *owner, const struct proxy_info *pi, const char *cn,
			   const char *cert_cn)
{
	struct conn *c = owner;
	char a[INET6_ADDRSTRLEN] = "";
	const char *text = a;
	if (pi->family == PROXY_INET || pi->family == PROXY_INET6) {
		c->af_known = 1;
		c->af_unix = 0;
		c->af6 = pi->family == PROXY_INET6;
		memcpy(c->addr, pi->addr, c->af6 ? 16 : 4);
		c->port = pi->port;
		conn_addr(c, a);
	} else if (pi->family == PROXY_UNIX) {
		c->af_known = 0;
		c->port = 0;
		text = pi->path;
	}
	/* PROXY LOCAL: the socket's own address stays (text "") */
	size_t len = strlen(text);
	struct conn_peer *p = malloc(sizeof(*p) + len + 1);
	if (!p)
		return -1;
	p->port = c->port;
	p->identity = NULL;
	memcpy(p->text, text, len + 1);
	if (cn && !(p->identity = strdup(cn))) {
		free(p);
		return -1;
	}
	struct ioq_rec r = {.op = IO_PEER, .conn = c, .p = p};
	iothr_report(sock_io(c), &r);
	if (cert_cn && conn_proxy_cert(c, cert_cn) < 0)
		return -1;
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("PROXY header: the client is %s:%u", text[0] ? text : "(local)", c->port);
	return 0;
}

/*
 * The layers of a connection accepted on l, bottom up: the socket, PROXY
 * (enable_proxy_protocol), TLS (certfile), WebSocket (protocol
 * websockets). Each is given what it needs now (buffers from the pool of
 * io, the thread that will own it) and reports up through its callback.
 */
static struct xport *conn_layers_new(struct listener *l, struct conn *c, struct iothr *io)
{
	struct midge *m = l->m;
	struct xport *top = &tcp_xport, *x = NULL;
	if (l->proxy) {
		struct proxy_opts o = {l->proxy, l->proxy_require_tls, l->proxy_require_cert,
				       l->proxy_identity, zauth_on(m)};
		if (!(x = proxy_xport_new(&o, top, &io->rbufs, conn_proxy_peer, c)))
			goto fail;
		top = x;
	}
	if (l->creds) {
		if (!(x = tls_xport_new(l->creds, top, &io->rbufs, conn_tls_identity,
					    zauth_on(m) ? conn_tls_cert : NULL, c)))
			goto fail;
		top = x;
	}
	if (l->ws) {
		/* A frame or a message is bounded like a packet. */
		uint64_t max_frame = m->conf.engine.max_packet_size;
		if (!(x = ws_xport_new(l->ws, top, &io->rbufs, max_frame)))
			goto fail;
		top = x;
	}
	return top;
fail:
	xport_free(top);
	return NULL;
}

/* Whether a connection from ss on l must be refused (max_connections of
 * l or of the broker, midge_max_pending_connects): logged at most once a
 * second, with the count refused since. */
static bool conn_over_limit(struct listener *l, const struct sockaddr_storage *ss)
{
	struct midge *m = l->m;
	const char *why = "max_connections reached";
	if ((l->max_connections < 0 || l->count < l->max_connections) &&
	    (m->conf.max_connections < 0 || m->n_conns < m->conf.max_connections)) {
		if (!m->conf.max_pending_connects || m->pre.n < m->conf.max_pending_connects)
			return false;
		why = "midge_max_pending_connects reached";
	}
	/* One line a second at most: a flood must not become a log flood. */
	uint64_t now = broker_now_ms();
	if (now - m->accept_refused_logged_ms >= 1000) {
		struct conn tmp = {0};
		char addr[INET6_ADDRSTRLEN];
		conn_set_peer(&tmp, ss);
		log_notice("connection from %s:%u refused: %s (%llu refused since the last line)",
			   conn_addr(&tmp, addr), tmp.port, why,
			   (unsigned long long)m->accept_refused + 1);
		m->accept_refused_logged_ms = now;
		m->accept_refused = 0;
	} else {
		m->accept_refused++;
	}
	return true;
}

void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct midge *m = l->m;
	char addr[INET6_ADDRSTRLEN];
	if (m->stopping || conn_over_limit(l, ss)) {
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->io_index = (uint8_t)(m->next_io++ % (unsigned)m->n_io);
	struct iothr *io = conn_io(m, c);
	c->io = io;
	c->fd = -1; /* the socket half's from IO_ADOPT on */
	c->xport = &tcp_xport;
	conn_set_peer(c, ss);
#ifndef __linux__
	{
		/* Linux copies TCP_NODELAY from the listening socket. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
#endif
	uint64_t now = broker_now_ms();
	c->listener = l; /* for a Unix socket's address */
	/* ownership: the layers are the I/O thread's from IO_ADOPT on */
	struct xport *top = conn_layers_new(l, c, io);
	if (!top)
		goto fail;
	c->xport = top;
	c->ec = engine_conn_open(m->engine, c, conn_addr(c, addr), c->port, l->creds != NULL, now);
	if (!c->ec)
		goto fail;
	/* the listener's number is its place in the configuration it was bound from */
	if (engine_conn_set_listener(c->ec, (uint16_t)(l->index + 1), l->versions,
				     l->username_as_clientid, l->mount_point) < 0)
		goto fail;
	struct ioq_rec r = {.op = IO_ADOPT, .conn = c, .len = (uint32_t)fd};
	if (iothr_post(io, &r) < 0)
		goto fail;
	/* ownership: the socket and its layers belong to the I/O thread now */
	m->n_conns++;
	m->sockets_accepted++;
	l->count++;
	c->reading = true; /* an adopted socket is read */
	c->phase_since_ms = broker_rel_ms(m, now);
	c->in_pre = true;
	conn_list_append(&m->pre, c);
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("new connection from %s:%u on port %u", addr, c->port, l->port);
	return;
fail:
	if (c->ec)
		engine_conn_closed(m->engine, c->ec, NULL, now);
	xport_free(c->xport);
	free(c);
	close(fd);
}
