/*
 * listener.c - listening sockets: resolving and binding each configured
 * listener (TCP over IPv4 and IPv6, or a Unix domain socket; its TLS
 * credentials, WebSocket settings and PROXY demands), accepting with
 * accept4 (the connection itself is conn_accept's), resting a listener
 * that runs out of descriptors, closing them all.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "transport/broker.h"
#include "transport/config.h"
#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/tls.h"
#include "transport/ws.h"

#define ACCEPTS_PER_WAKEUP 128
#define ACCEPT_PAUSE_MS 100  /* a listener out of file descriptors rests this long */
#define LISTEN_BACKLOG 4096  /* the kernel caps it at net.core.somaxconn */

static void listener_on_poll(uv_poll_t *h, int status, int events);
static void listener_on_closed(uv_handle_t *h);

/* Polls every listener that rested after running out of descriptors. */
static void listener_on_resume(uv_timer_t *t)
{
	struct midge *m = t->data;
	for (struct listener *l = m->listeners; l; l = l->next) {
		if (l->paused && uv_poll_start(&l->poll, UV_READABLE, listener_on_poll) == 0)
			l->paused = false;
	}
}

/*
 * accept() failed with err (not EAGAIN): out of descriptors or memory.
 * Out of descriptors, lingering connections give theirs back first.
 * Otherwise the pending connection stays in the backlog and polling is
 * level-triggered, so the listener would wake the loop again at once:
 * it stops being polled for ACCEPT_PAUSE_MS instead, and the error is
 * logged at most once a second.
 */
static void listener_pause(struct listener *l, int err)
{
	struct midge *m = l->m;
	uint64_t now = broker_now_ms();
	/* Lingering connections are over anyway: their descriptors go first. */
	if ((err == EMFILE || err == ENFILE) && iothr_linger_drop(m, false) > 0)
		return;
	if (now - m->accept_error_logged_ms >= 1000) {
		m->accept_error_logged_ms = now;
		log_warn("accept on port %u: %s (%d connections open): not accepting for %d ms", l->port,
			 strerror(err), m->n_conns, ACCEPT_PAUSE_MS);
	}
	uv_poll_stop(&l->poll);
	l->paused = true;
	if (!uv_is_active((uv_handle_t *)&m->accept_pause))
		uv_timer_start(&m->accept_pause, listener_on_resume, ACCEPT_PAUSE_MS, 0);
}

/* Accepts what is pending, at most ACCEPTS_PER_WAKEUP connections: with
 * accept4 the socket is non-blocking and the peer address known in one
 * system call. */
static void listener_on_poll(uv_poll_t *h, int status, int events)
{
	struct listener *l = (struct listener *)h;
	(void)events;
	if (status < 0) {
		listener_pause(l, -status);
		return;
	}
	for (int i = 0; i < ACCEPTS_PER_WAKEUP && l->fd >= 0; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
#ifdef SOCK_NONBLOCK
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
		int fd = accept(l->fd, (struct sockaddr *)&ss, &len);
		if (fd >= 0)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			listener_pause(l, errno);
			return;
		}
		if (len > sizeof(ss))
			ss.ss_family = AF_UNSPEC;
		conn_accept(l, fd, &ss);
	}
}

/* A listening socket on sa, TCP_NODELAY set so that every accepted
 * socket inherits it (Linux copies it: one setsockopt less per
 * connection), bound to the network interface iface when it is not NULL
 * (bind_interface: SO_BINDTODEVICE). Returns the socket or -errno. */
static int listener_socket(const struct sockaddr *sa, const char *iface)
{
	int one = 1;
	bool inet = sa->sa_family != AF_UNIX;
	socklen_t salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
			  : inet		  ? sizeof(struct sockaddr_in)
						  : sizeof(struct sockaddr_un);
#ifdef SOCK_NONBLOCK
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
	int fd = socket(sa->sa_family, SOCK_STREAM, 0);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
	if (fd < 0)
		return -errno;
#ifdef SO_BINDTODEVICE
	if (iface && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface) + 1) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
#else
	if (iface) {
		close(fd);
		return -ENOTSUP; /* no way to honour bind_interface: refuse */
	}
#endif
	int rc = 0;
	if (inet) {
		rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		     (sa->sa_family == AF_INET6 &&
		      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
		     setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
		     bind(fd, sa, salen) < 0;
	} else {
		/* A Unix socket is srwxrwx---: its owner and group may connect,
		 * others may not (Mosquitto's umask 0007 around bind). */
		mode_t old = umask(0007);
		rc = bind(fd, sa, salen) < 0;
		umask(old);
	}
	if (rc || listen(fd, LISTEN_BACKLOG) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/* What a listener's connections get, loaded once per configured
 * listener whatever it binds. */
struct listener_layers {
	struct tls_creds *creds;
	struct ws_conf *ws;
};

static int listener_bind(struct midge *m, int index, const struct sockaddr *sa,
			 const struct listener_layers *ly, char *err, size_t errlen)
{
	const struct conf_listener *cl = &m->conf.listeners[index];
	struct listener *l = calloc(1, sizeof(*l));
	if (!l || (cl->unix_path && !(l->unix_path = strdup(cl->unix_path)))) {
		free(l);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->m = m;
	l->index = index;
	l->max_connections = cl->max_connections;
	l->proxy = cl->proxy_protocol;
	l->proxy_require_tls = cl->proxy_require_tls;
	/* Behind a proxy that terminated TLS, its header vouches for the
	 * client's certificate; with TLS of our own, GnuTLS does. */
	l->proxy_require_cert = cl->proxy_protocol == 2 && !ly->creds && cl->require_certificate;
	l->proxy_identity = cl->proxy_protocol == 2 && !ly->creds && cl->use_identity_as_username;
	l->versions = cl->protocol_versions;
	l->username_as_clientid = cl->use_username_as_clientid;
	if (cl->mount_point && !(l->mount_point = strdup(cl->mount_point))) {
		free(l->unix_path);
		free(l);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, l->addr, sizeof(l->addr));
	else if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, l->addr, sizeof(l->addr));
	int rc = l->fd = listener_socket(sa, cl->bind_interface);
	if (rc >= 0) {
		rc = uv_poll_init(&m->loop, &l->poll, l->fd);
		if (rc < 0)
			close(l->fd);
		else if ((rc = uv_poll_start(&l->poll, UV_READABLE, listener_on_poll)) < 0) {
			uv_close((uv_handle_t *)&l->poll, listener_on_closed);
			close(l->fd);
			snprintf(err, errlen, "cannot listen on %s port %u: %s", l->addr, cl->port,
				 uv_strerror(rc));
			return -1;
		}
	} else {
		rc = uv_translate_sys_error(-rc);
	}
	if (rc < 0) {
		if (l->unix_path)
			snprintf(err, errlen, "cannot listen on Unix socket %s: %s", l->unix_path,
				 uv_strerror(rc));
		else
			snprintf(err, errlen, "cannot listen on %s port %u%s%s: %s", l->addr, cl->port,
				 cl->bind_interface ? " on interface " : "",
				 cl->bind_interface ? cl->bind_interface : "", uv_strerror(rc));
		free(l->unix_path);
		free(l->mount_point);
		free(l);
		return -1;
	}
	if (!l->unix_path) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		getsockname(l->fd, (struct sockaddr *)&ss, &sslen);
		l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	}
	l->creds = ly->creds ? tls_creds_ref(ly->creds) : NULL;
	l->ws = ly->ws ? ws_conf_ref(ly->ws) : NULL;
	l->next = m->listeners;
	m->listeners = l;
	const char *kind = l->ws ? (l->creds ? " (WebSocket over TLS)" : " (WebSocket)")
			   : l->creds ? " (TLS)" : "";
	const char *proxy = l->proxy == 1 ? ", PROXY v1" : l->proxy == 2 ? ", PROXY v2" : "";
	if (l->unix_path)
		log_notice("listening on Unix socket %s%s%s", l->unix_path, kind, proxy);
	else
		log_notice("listening on %s%s%s port %u%s%s", sa->sa_family == AF_INET6 ? "[" : "",
			   l->addr, sa->sa_family == AF_INET6 ? "]" : "", l->port, kind, proxy);
	return 0;
}

/* A Unix domain socket listener: a stale socket left by an earlier run is
 * replaced; anything else at the path is not touched. */
static int listener_open_unix(struct midge *m, int index, const struct listener_layers *ly,
			      char *err, size_t errlen)
{
	const char *path = m->conf.listeners[index].unix_path;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "Unix socket path %s is longer than %zu bytes", path,
			 sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "Unix socket path %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	return listener_bind(m, index, (const struct sockaddr *)&sun, ly, err, errlen);
}

/* Binds one configured listener on every address its host resolves to
 * (both IPv4 and IPv6 "any" when there is no host). */
static int listener_open(struct midge *m, int index, const char *const *fallback_hosts, char *err,
			 size_t errlen)
{
	const struct conf_listener *cl = &m->conf.listeners[index];
	const char *any[] = {"0.0.0.0", "::", NULL};
	const char *one[] = {cl->host, NULL};
	const char *const *hosts = fallback_hosts ? fallback_hosts : cl->host ? one : any;
	int bound = 0;
	char port[8];
	struct listener_layers ly = {NULL, NULL};
	char e[400];
	snprintf(port, sizeof(port), "%u", cl->port);
	/* Settings given on the command line or through the API were not
	 * checked by conf_load(). */
	if (conf_listener_check(cl, err, errlen) < 0)
		return -1;
	/* Certificates are loaded once per listener, whatever it binds. */
	if ((cl->certfile || cl->keyfile || cl->psk_hint) &&
	    !(ly.creds = tls_creds_new(cl, m->conf.psk_file, e, sizeof(e)))) {
		snprintf(err, errlen, "listener on port %u: %s", cl->port, e);
		return -1;
	}
	if (cl->websockets && !(ly.ws = ws_conf_new(cl, m->conf.ws_headers_size, e, sizeof(e)))) {
		snprintf(err, errlen, "listener on port %u: %s", cl->port, e);
		tls_creds_unref(ly.creds);
		return -1;
	}
	if (cl->unix_path) {
		int rc = listener_open_unix(m, index, &ly, err, errlen);
		tls_creds_unref(ly.creds);
		ws_conf_unref(ly.ws);
		return rc;
	}
	for (int i = 0; hosts[i]; i++) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(hosts[i], port, &hints, &res);
		if (rc != 0) {
			snprintf(err, errlen, "listener address '%s': %s", hosts[i], gai_strerror(rc));
			tls_creds_unref(ly.creds);
			ws_conf_unref(ly.ws);
			return -1;
		}
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			if (listener_bind(m, index, ai->ai_addr, &ly, e, sizeof(e)) == 0) {
				bound++;
			} else if (hosts != one || ai->ai_next || bound) {
				/* IPv6 may be off on this machine: not fatal while
				 * another address of the listener works. */
				log_warn("%s", e);
				snprintf(err, errlen, "%s", e);
			} else {
				snprintf(err, errlen, "%s", e);
			}
		}
		freeaddrinfo(res);
	}
	tls_creds_unref(ly.creds);
	ws_conf_unref(ly.ws);
	return bound > 0 ? 0 : -1;
}

/* Connections outlive their listener during a shutdown: it is freed
 * when both its handle is closed and its last connection has ended. */
void listener_free(struct listener *l)
{
	/* a Unix socket's path is the address its connections log */
	free(l->unix_path);
	free(l->mount_point);
	free(l);
}

static void listener_on_closed(uv_handle_t *h)
{
	struct listener *l = (struct listener *)h;
	l->closed = true;
	if (l->count == 0)
		listener_free(l);
}

void listeners_close(struct midge *m)
{
	struct listener *l = m->listeners;
	m->listeners = NULL;
	while (l) {
		struct listener *next = l->next;
		tls_creds_unref(l->creds);
		l->creds = NULL;
		ws_conf_unref(l->ws);
		l->ws = NULL;
		if (l->unix_path)
			unlink(l->unix_path);
		uv_close((uv_handle_t *)&l->poll, listener_on_closed);
		close(l->fd);
		l = next;
	}
}

int listeners_open(struct midge *m)
{
	char err[512];
	if (m->conf.n_listeners == 0) {
		/* No listener configured: local only, as Mosquitto 2 does. */
		static const char *const local[] = {"127.0.0.1", "::1", NULL};
		int i = conf_add_listener(&m->conf, NULL, CONF_DEFAULT_PORT);
		if (i < 0)
			return -1;
		log_notice("no listener configured: listening on localhost only (127.0.0.1 and ::1, "
			   "port %u), as Mosquitto 2 does",
			   CONF_DEFAULT_PORT);
		if (listener_open(m, i, local, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
		return 0;
	}
	for (int i = 0; i < m->conf.n_listeners; i++) {
		if (listener_open(m, i, NULL, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
	}
	return 0;
}

uint16_t broker_first_port(const struct midge *m)
{
	uint16_t port = 0;
	for (const struct listener *l = m->listeners; l; l = l->next)
		port = l->port;
	return port;
}
