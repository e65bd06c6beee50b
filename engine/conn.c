/*
 * conn.c - connection lifetime: open, TLS identity, asking the transport
 * to close (client_request_close) versus freeing the record once the
 * socket is gone (client_teardown), keepalive, graceful shutdown.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* Asks the transport to close c (once); records the cause for the
 * disconnect event unless one is recorded already. */
void client_request_close(struct engine *e, struct engine_conn *c, uint8_t rc, bool by_client,
		       const char *why)
{
	if (!c->close_cause_set) {
		c->close_cause_set = true;
		c->close_rc = rc;
		c->close_by_client = by_client;
		c->close_why = why;
	}
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	timer_cancel(e, &c->keepalive_timer);
	e->io.close(e->io.ctx, c->handle);
}

struct engine_conn *engine_conn_open(struct engine *e, void *handle, const char *peer_addr,
				     uint16_t peer_port, bool tls, uint64_t now_ms)
{
	size_t n = peer_addr ? strnlen(peer_addr, PEER_TEXT_MAX - 1) : 0;
	size_t size = offsetof(struct engine_conn, peer) + n + 1;
	struct engine_conn *c = calloc(1, size > sizeof *c ? size : sizeof *c);
	if (!c)
		return NULL;
	c->e = e;
	c->handle = handle;
	c->last_packet_ms = now_ms;
	c->keepalive_timer.kind = T_KEEPALIVE;
	memcpy(c->peer, peer_addr ? peer_addr : "", n);
	c->info.peer_addr = c->peer;
	c->info.peer_port = peer_port;
	c->info.tls = tls;
	c->next = e->conns;
	if (e->conns)
		e->conns->prev = c;
	e->conns = c;
	return c;
}

int engine_conn_set_listener(struct engine_conn *c, uint16_t listener, uint8_t versions,
			     bool username_as_clientid, const char *mount_point)
{
	c->info.listener = listener;
	c->versions = versions;
	c->username_as_clientid = username_as_clientid;
	free(c->mount);
	c->mount = NULL;
	c->mount_len = 0;
	if (mount_point && *mount_point) {
		size_t n = strlen(mount_point);
		if (n > 65535 || !(c->mount = engine_dup_bytes(mount_point, n)))
			return -1;
		c->mount_len = (uint16_t)n;
	}
	return 0;
}

/*
 * mount_point (Mosquitto's): what a client of a listener with one
 * publishes and subscribes to lives under it: *p[0..*n) (a topic or a
 * filter) becomes the mount point followed by it (a shared filter
 * "$share/G/F": "$share/G/" then the mount point then F). Without a mount
 * point *p is left as it is. The result is in e->mount_buf until the next
 * call. Returns 0, or -1 (out of memory, or longer than a topic may be).
 */
int conn_mount(struct engine *e, const struct engine_conn *c, const uint8_t **p, size_t *n)
{
	if (!c->mount_len)
		return 0;
	size_t total = *n + c->mount_len, head = 0;
	if (total > 65535)
		return -1;
	if (total > e->cap_mount_buf) {
		uint8_t *b = realloc(e->mount_buf, total);
		if (!b)
			return -1;
		e->mount_buf = b;
		e->cap_mount_buf = total;
	}
	if (*n > 7 && memcmp(*p, "$share/", 7) == 0) {
		const uint8_t *slash = memchr(*p + 7, '/', *n - 7);
		head = slash ? (size_t)(slash + 1 - *p) : 0;
	}
	memcpy(e->mount_buf, *p, head);
	memcpy(e->mount_buf + head, c->mount, c->mount_len);
	memcpy(e->mount_buf + head + c->mount_len, *p + head, *n - head);
	*p = e->mount_buf;
	*n = total;
	return 0;
}

int engine_conn_set_identity(struct engine_conn *c, const char *username)
{
	size_t n = strlen(username);
	char *u = engine_dup_bytes(username, n);
	if (!u)
		return -1;
	free((char *)c->info.username.p);
	c->info.username.p = u;
	c->info.username.len = n;
	return 0;
}

void engine_conn_cap_expiry(struct engine_conn *c, uint32_t seconds)
{
	c->auth_expiry_capped = true;
	c->auth_expiry_max = seconds;
}

int engine_conn_set_peer(struct engine_conn *c, const char *peer_addr, uint16_t peer_port)
{
	size_t n = strnlen(peer_addr, PEER_TEXT_MAX - 1);
	char *text = c->peer;
	if (n > strlen(c->peer)) {
		/* The record was sized to the socket's address: a longer one
		 * gets its own copy (once per connection, before CONNECT). */
		text = engine_dup_bytes(peer_addr, n);
		if (!text)
			return -1;
	} else {
		memcpy(text, peer_addr, n);
		text[n] = '\0';
	}
	if (c->info.peer_addr != c->peer)
		free((char *)c->info.peer_addr);
	c->info.peer_addr = text;
	c->info.peer_port = peer_port;
	return 0;
}

const struct midge_client *engine_conn_client(const struct engine_conn *c)
{
	return &c->info;
}

uint8_t engine_conn_version(const struct engine_conn *c)
{
	return c->state < CONN_UP ? 0 : c->version;
}

/* Frees c once the transport reported the socket gone (or the engine is
 * freed): aliases, a held CONNECT, its copies of client id and username.
 * It does not touch c's session; callers detach it first. */
void client_teardown(struct engine *e, struct engine_conn *c)
{
	timer_cancel(e, &c->keepalive_timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		e->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	alias_free(c);
	hold_free(e, c);
	connect_held_free(c);
	authx_free(e, c);
	if (c->cid_own)
		free((char *)c->info.client_id.p);
	free((char *)c->info.username.p);
	if (c->info.peer_addr != c->peer)
		free((char *)c->info.peer_addr);
	free(c->mount);
	free(c);
}

void engine_conn_closed(struct engine *e, struct engine_conn *c, const char *why, uint64_t now_ms)
{
	e->now = now_ms;
	struct session *s = c->s;
	connect_held_cancel(e, c);
	authx_cancel(e, c);
	if (c->state != CONN_CLOSING)
		timer_cancel(e, &c->keepalive_timer);
	c->state = CONN_CLOSING;
	if (c->counted_connected) {
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_DISCONNECT, &c->info);
		if (c->close_cause_set) {
			ev.u.disconnect.rc = c->close_rc;
			ev.u.disconnect.by_client = c->close_by_client;
			ev.u.disconnect.why = c->close_why;
		} else {
			ev.u.disconnect.rc = MQTT_RC_UNSPECIFIED;
			ev.u.disconnect.by_client = true;
			ev.u.disconnect.why = why ? why : "connection closed";
		}
		ev.u.disconnect.will = s && s->will && !c->normal_disconnect;
		event_emit(e, &ev);
		e->st.clients_connected--;
	}
	if (s)
		session_detach(e, s, !c->normal_disconnect);
	client_teardown(e, c);
}

/* The keepalive deadline of c came due: moved to the real deadline when a
 * packet arrived meanwhile (the heap is not touched per packet), else the
 * connection is closed [MQTT-3.1.2-24]. */
void client_keepalive_fire(struct engine *e, struct engine_conn *c)
{
	uint64_t deadline = c->last_packet_ms + (uint64_t)c->keepalive * 1500;
	if (c->state != CONN_UP || !c->keepalive)
		return;
	if (e->now < deadline) {
		timer_set(e, &c->keepalive_timer, deadline);
		return;
	}
	/* [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0) */
	output_disconnect(e, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
	client_request_close(e, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, false, "keepalive timeout");
}

void engine_shutdown(struct engine *e, uint64_t now_ms)
{
	e->now = now_ms;
	for (struct engine_conn *c = e->conns; c; c = c->next) {
		if (c->state == CONN_CLOSING)
			continue;
		if (c->state == CONN_UP)
			output_disconnect(e, c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
		client_request_close(e, c, MQTT_RC_SERVER_SHUTTING_DOWN, false, "server shutting down");
	}
}

uint32_t engine_recheck(struct engine *e, bool (*keep)(void *ctx, const struct midge_client *cl),
			void *ctx, uint64_t now_ms)
{
	uint32_t closed = 0;
	e->now = now_ms;
	for (struct engine_conn *c = e->conns; c; c = c->next) {
		if (c->state != CONN_UP || keep(ctx, &c->info))
			continue;
		output_disconnect(e, c, MQTT_RC_NOT_AUTHORIZED, "not authorized any more");
		client_request_close(e, c, MQTT_RC_NOT_AUTHORIZED, false, "not authorized any more");
		closed++;
	}
	return closed;
}

struct engine_conn *engine_conn_of(const struct midge_client *client)
{
	return container_of(client, struct engine_conn, info);
}

void *engine_conn_handle(const struct engine_conn *c)
{
	return c->handle;
}
