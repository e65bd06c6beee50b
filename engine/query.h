/*
 * query.h - what an administrator may read from and do to the engine
 * (the HTTP API's view): clients and their sessions, subscriptions,
 * retained messages, kicking a client, publishing as the administrator.
 *
 * Every call runs on the engine thread (the loop that owns struct
 * engine) and returns before it returns: views handed to callbacks are
 * valid only during the call. Listing calls are paged by an opaque cursor
 * and do bounded work per page, whatever the number of clients, so an
 * administrator's request never stalls the broker.
 */
#ifndef MIDGE_ENGINE_QUERY_H
#define MIDGE_ENGINE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

struct engine;

/* One client: its session and, while it is connected, its connection. */
struct engine_client_info {
	struct midge_str client_id;
	struct midge_str username;    /* empty when offline or anonymous */
	const char *peer_addr;        /* NULL when offline */
	uint16_t peer_port;
	bool connected;
	bool tls;
	uint8_t protocol;             /* 3, 4, 5 (the session's when offline) */
	uint16_t keep_alive;          /* negotiated, seconds; 0 when offline */
	uint32_t session_expiry;      /* seconds; UINT32_MAX never */
	uint32_t subscriptions;
	uint32_t inflight;            /* outgoing QoS 1/2 awaiting acknowledgement */
	uint32_t queued;              /* messages waiting for the window or the client */
	uint64_t queued_bytes;
	bool will;                    /* a will is pending */
	uint32_t will_delay;          /* seconds */
	struct midge_str will_topic;  /* empty without a will */
	uint16_t receive_max;         /* the client's receive maximum (v5), 0 offline */
	uint32_t max_packet;          /* the client's maximum packet size, 0 none */
};

/* Which clients a listing returns; an empty prefix matches every one. */
struct engine_client_filter {
	struct midge_str client_id_prefix;
	struct midge_str username_prefix; /* offline sessions have no username */
	int connected;                    /* -1 any, 0 offline only, 1 connected only */
};

typedef void (*engine_client_cb)(void *ctx, const struct engine_client_info *ci);

/*
 * Fills *out for client id cid[0..len). Returns 0, or -1 when no session
 * has that id. Views in *out point into engine state: use them before the
 * engine runs again.
 */
int engine_query_client(struct engine *e, const char *cid, size_t len,
			struct engine_client_info *out);

/*
 * One page of clients matching f. The cursor starts at 0; the return
 * value is the cursor of the next page, 0 when the listing is complete.
 * The walk is Redis's SCAN over the client-id hash table (reverse-binary
 * bucket order): every client present for the whole listing is returned
 * at least once even if the table grows meanwhile; one that comes or goes
 * during it may or may not be. Work is bounded: at most `limit` clients
 * are reported (one bucket's chain may go past it) and at most
 * max_buckets buckets visited, so a filter that matches few clients gives
 * short (even empty) pages with a cursor to go on, never a long scan.
 */
uint64_t engine_query_clients(struct engine *e, uint64_t cursor, const struct engine_client_filter *f,
			      uint32_t limit, uint32_t max_buckets, engine_client_cb cb, void *ctx);

/* Sessions in the table (connected or not). */
uint64_t engine_query_client_count(const struct engine *e);

/* One subscription. */
struct engine_sub_info {
	struct midge_str client_id;
	struct midge_str filter;
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
	uint32_t sub_id; /* 0: none */
};

typedef void (*engine_sub_cb)(void *ctx, const struct engine_sub_info *si);

/*
 * One page of subscriptions: of client cid when cid_len > 0 (then
 * -1 is returned if there is no such client), else of everyone; only
 * those whose filter is exactly filter[0..flen) when flen > 0. Cursor
 * semantics as engine_query_clients(): 0 starts, the return value goes
 * on, 0 ends. A client's list is paged by position (newest first); all
 * subscriptions by slot of the engine's subscription table, at most
 * max_slots slots a page. Subscriptions made or removed during a listing
 * may or may not appear, and a table that grows restarts nothing but may
 * repeat or skip some.
 */
int64_t engine_query_subscriptions(struct engine *e, const char *cid, size_t cid_len,
				   const char *filter, size_t flen, uint64_t cursor, uint32_t limit,
				   uint32_t max_slots, engine_sub_cb cb, void *ctx);

typedef void (*engine_retained_cb)(void *ctx, const struct midge_message *msg,
				   uint32_t expiry_left);

/*
 * Calls cb for at most limit retained messages whose topic matches
 * filter (a topic filter; validated here: -1 if invalid) and returns how
 * many matched in all. expiry_left is the message's remaining expiry in
 * seconds (UINT32_MAX: none).
 */
int64_t engine_query_retained(struct engine *e, const char *filter, size_t len, uint32_t limit,
			      engine_retained_cb cb, void *ctx);

/* The retained message of topic, or 0 when there is none (cb not called);
 * 1 when cb was called; -1 when topic is not a valid topic name. */
int engine_query_retained_get(struct engine *e, const char *topic, size_t len,
			      engine_retained_cb cb, void *ctx);

/*
 * Removes the retained message of topic (as a zero-length retained
 * PUBLISH would, without delivering anything): the store and the
 * retained.cleared event hear of it. Returns 1 when one was removed, 0
 * when there was none, -1 for an invalid topic name.
 */
int engine_retained_delete(struct engine *e, const char *topic, size_t len, uint64_t now_ms);

/* What engine_client_kick() did. */
enum engine_kick_result {
	ENGINE_KICK_NOT_FOUND = -1,
	ENGINE_KICK_DISCONNECTED = 1,      /* it was connected: DISCONNECT 0x98 (v5), closed */
	ENGINE_KICK_SESSION_DISCARDED = 2, /* offline, and its session is gone */
	ENGINE_KICK_OFFLINE = 3,           /* offline, session kept: nothing done */
};

/*
 * An administrator disconnects client cid: a v5 client gets DISCONNECT
 * 0x98 (Administrative action) [MQTT-3.14.2-1], every version is closed
 * as a server-initiated disconnect (its will is published). discard also
 * ends the session: at once when offline (its pending will goes out, as
 * at session end [MQTT-3.1.2-8]), when the socket is gone otherwise.
 */
enum engine_kick_result engine_client_kick(struct engine *e, const char *cid, size_t len,
					   bool discard, uint64_t now_ms);

/*
 * Ends the connection of client cid for reason rc (a v5 reason code, e.g.
 * MQTT_RC_MAX_CONNECT_TIME when its credentials expired): a v5 client
 * gets DISCONNECT rc, every version is closed as a server-initiated
 * disconnect (its will is published). Returns whether it was connected.
 */
bool engine_client_disconnect(struct engine *e, const char *cid, size_t len, uint8_t rc,
			      const char *why, uint64_t now_ms);

/*
 * Publishes as an administrator, held to the same checks as a client's
 * PUBLISH: a valid topic name, the v5 property block props[0..props_len)
 * decoded as a PUBLISH's (no subscription identifier, no topic alias),
 * QoS within max_qos, retain available, payload within
 * message_size_limit, topic depth, the publish ACL for `from`, payload
 * format 1 with UTF-8, the retained-store bounds. from names the
 * publisher in events (its client id may be empty); it must outlive the
 * call only. Returns 0 and the number of receivers in *receivers, or a
 * v5 reason code (> 0) with a reason in *why.
 */
int engine_admin_publish(struct engine *e, const struct midge_client *from, const char *topic,
			 size_t topic_len, const void *payload, size_t payload_len,
			 const uint8_t *props, size_t props_len, uint8_t qos, bool retain,
			 uint64_t now_ms, uint32_t *receivers, const char **why);

#endif
