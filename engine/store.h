/*
 * store.h - the calls the engine makes so that a persistence layer can keep
 * what must survive a restart (persistent sessions, their subscriptions,
 * queued and in-flight messages, incoming QoS 2 ids awaiting PUBREL,
 * wills, retained messages, the replay logs), the completion it receives
 * when changes are durable, and the calls a store makes at start-up to
 * rebuild the engine from what it kept.
 *
 * What reaches the store: a session while its expiry is not 0 (clean
 * sessions and their traffic never do), its QoS 1/2 deliveries (QoS 0 is
 * never queued here), retained messages, replay logs. Calls are made on
 * the engine's thread in the order the changes happen; every view is valid
 * during the call only, so a store copies what it keeps (or hands it to
 * its writer thread, which must never touch engine state).
 *
 * Messages carry a stable id (struct engine_store_msg): the same message
 * queued for many sessions, retained and logged is one id, so a store
 * keeps its body once. Each call that makes a session, the retained store
 * or a log hold a message is matched by exactly one call that lets it go
 * (unqueued, flight released or done, released with a removed session,
 * retained replaced, history removed), so a store can count references.
 *
 * Acknowledgements wait for durability (the "ack" mode): after a packet
 * whose handling reported changes, the engine asks ticket() and holds the
 * acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) until
 * the store calls engine_store_durable() with that ticket or a later one.
 * A store that does not want acknowledgements held returns 0.
 *
 * Without engine_store_attach() the engine uses a store whose calls do
 * nothing (store.c): nothing survives, nothing waits.
 */
#ifndef MIDGE_ENGINE_STORE_H
#define MIDGE_ENGINE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

struct engine;

/* Subscription identifiers a stored delivery carries at most (as the
 * engine's deliveries). */
#define ENGINE_STORE_SUBIDS 4

/* A persistent session as a resume needs it. user and listener are who
 * its last connection was: what the receive ACL asks about while it is
 * offline, so they must come back with it (else its queue would be
 * checked as an anonymous client's). */
struct engine_store_session {
	struct midge_str client_id;
	uint32_t expiry;          /* seconds after the connection ends; UINT32_MAX = never */
	uint8_t protocol;         /* 3, 4 or 5 */
	uint64_t disconnected_at; /* wall-clock ms its connection ended; 0 while connected */
	struct midge_str user;    /* user name; p NULL: anonymous */
	uint16_t listener;        /* midge_client.listener */
};

/* Who published a message, as check_retain_source asks about it: a client
 * (its user name, p NULL for anonymous or not known, and its listener) or
 * the broker itself (client false: never checked). */
struct engine_store_source {
	bool client;
	struct midge_str user;
	uint16_t listener;
};

/* A message: its stable id and its content. v.qos and v.retain are the
 * message's own (as published); v.props the raw v5 PUBLISH (or will)
 * properties; expiry_at its absolute deadline (wall-clock ms, 0 = none;
 * for a will not yet published, 0 and the interval is in props). */
struct engine_store_msg {
	uint64_t id;
	struct midge_message v;
	uint64_t expiry_at;
	struct engine_store_source source;
};

/* How one session receives a message. */
struct engine_store_delivery {
	uint8_t qos;    /* 1 or 2 */
	bool retain;    /* the retain flag this delivery carries */
	bool shared;    /* through a shared subscription */
	uint8_t n_sub_ids;
	uint32_t sub_ids[ENGINE_STORE_SUBIDS];
};

/* The states of an outgoing QoS 1/2 exchange (restore). */
enum engine_store_flight {
	ENGINE_STORE_AWAIT_PUBACK = 1,
	ENGINE_STORE_AWAIT_PUBREC = 2,
	ENGINE_STORE_AWAIT_PUBCOMP = 3, /* PUBREL sent: the message body is no longer needed */
};

/*
 * Every member must be set (use the no-op store's for what a store does
 * not keep). `sess` is the handle session_saved returned for the session
 * a call is about.
 */
struct engine_store {
	void *ctx;
	/* The session was created or resumed as persistent, its expiry
	 * changed, or its connection ended (disconnected_at). sess is NULL
	 * the first time; the handle returned is kept and passed to every
	 * later call about the session. NULL: the store does not keep it
	 * (and hears nothing more about it). */
	void *(*session_saved)(void *ctx, void *sess, const struct engine_store_session *s);
	/* The session ended (expired, discarded, or its expiry became 0):
	 * everything stored under it goes, and the handle is not used again.
	 * message_released() calls follow for the messages its queue and
	 * window held. */
	void (*session_removed)(void *ctx, void *sess);
	/* options is the SUBSCRIBE options byte; sub_id 0 = none. Added also
	 * replaces an existing subscription to the same filter. */
	void (*subscription_added)(void *ctx, void *sess, const struct midge_str *filter,
				   uint8_t options, uint32_t sub_id);
	void (*subscription_removed)(void *ctx, void *sess, const struct midge_str *filter);
	/* A QoS 1/2 delivery was appended to the session's queue. */
	void (*message_queued)(void *ctx, void *sess, const struct engine_store_msg *m,
			       const struct engine_store_delivery *d);
	/* The oldest queued delivery (of message msg_id) left the queue: sent
	 * (a flight_sent for it follows) or dropped. */
	void (*message_unqueued)(void *ctx, void *sess, uint64_t msg_id);
	/* A delivery went on the wire with packet_id, awaiting PUBACK (QoS 1)
	 * or PUBREC (QoS 2). */
	void (*flight_sent)(void *ctx, void *sess, uint16_t packet_id, const struct engine_store_msg *m,
			    const struct engine_store_delivery *d);
	/* PUBREC received, PUBREL sent: packet_id now awaits PUBCOMP and the
	 * body of msg_id is no longer needed by it. */
	void (*flight_released)(void *ctx, void *sess, uint16_t packet_id, uint64_t msg_id);
	/* The exchange of packet_id ended (PUBACK, PUBCOMP, or refused);
	 * msg_id 0 when flight_released let the message go already. */
	void (*flight_done)(void *ctx, void *sess, uint16_t packet_id, uint64_t msg_id);
	/* A reference of a removed session (its queue or window) is gone. */
	void (*message_released)(void *ctx, uint64_t msg_id);
	/* An incoming QoS 2 id was recorded (PUBREC follows) or released
	 * (PUBREL received, PUBCOMP follows). */
	void (*qos2_received)(void *ctx, void *sess, uint16_t packet_id);
	void (*qos2_released)(void *ctx, void *sess, uint16_t packet_id);
	/* The session's will (a will is not shared: a store keeps it with
	 * the session), or NULL when it has none any more; delay in seconds. */
	void (*will_set)(void *ctx, void *sess, const struct engine_store_msg *will, uint32_t delay);
	/* The retained message of topic is now m (NULL: cleared); old_id is
	 * the message it replaces (0: none). */
	void (*retained_set)(void *ctx, const struct midge_str *topic, const struct engine_store_msg *m,
			     uint64_t old_id);
	/* Replay log `filter` (midge_history) took message m as entry seq
	 * (increasing across every log, and across restarts) at `at` ms. */
	void (*history_added)(void *ctx, const struct midge_str *filter, uint64_t seq, uint64_t at,
			      const struct engine_store_msg *m);
	/* Entry seq of log `filter` (message msg_id) went: the log's bound. */
	void (*history_removed)(void *ctx, const struct midge_str *filter, uint64_t seq,
				uint64_t msg_id);
	/* The ticket engine_store_durable() will reach once everything
	 * reported so far is durable; 0 (or a ticket already reached) when
	 * acknowledgements need not wait. */
	uint64_t (*ticket)(void *ctx);
};

/* The store that keeps nothing: every call returns at once. */
extern const struct engine_store engine_store_none;

/* Makes the engine report to store (copied); NULL restores the no-op
 * store. Attach before the first connection (and after restoring): what
 * happened before is not replayed. */
void engine_store_attach(struct engine *e, const struct engine_store *store);

/*
 * Everything reported up to ticket is durable: acknowledgements held for
 * tickets up to it go out, in the order they were made, and connections
 * that stopped being read for holding too many are resumed
 * (engine_io.resume). Call on the engine's thread.
 */
void engine_store_durable(struct engine *e, uint64_t ticket, uint64_t now_ms);

/*
 * The store cannot write (disk full, I/O error) or can again. While it
 * cannot, new QoS 1/2 PUBLISH are refused (v5: PUBACK/PUBREC 0x97; 3.x:
 * not acknowledged, the connection is closed) and new persistent sessions
 * are refused (CONNACK 0x88 / 3); QoS 0 and deliveries already accepted
 * go on. why is copied into the refusals' reason string (static text).
 */
void engine_store_failing(struct engine *e, bool failing, const char *why);

/* ---- start-up: rebuilding the engine from a store ---------------------- */

/* A stored message's content (views valid during the call). */
struct engine_restore_msg {
	uint64_t id;
	const uint8_t *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *props; /* raw v5 properties (PUBLISH, or will properties for a will) */
	size_t props_len;
	const uint8_t *origin; /* client id of the publisher */
	size_t origin_len;
	uint8_t qos;
	bool retain;
	uint64_t expiry_at; /* wall-clock ms, 0 = none */
	struct engine_store_source source; /* ignored for a will (its session's) */
};

/*
 * Restoring, in this order: engine_restore_begin(); messages; sessions,
 * then what refers to them (subscriptions, queued, in flight, QoS 2 ids,
 * wills) by client id; retained; history; engine_store_attach();
 * engine_restore_end(). Each call returns 0, or -1 with *why set (static
 * text) when the record is invalid (a damaged store) or on OOM; the caller
 * then stops (engine_restore_abort() frees the partial work, or the
 * engine is freed). No store calls are made while restoring: the store
 * has it all already. Sessions come back offline; queued messages keep
 * their order, in-flight ones their packet ids and are resent with DUP
 * when the client resumes.
 */
/* -1 when the engine already made messages or sessions: restore first. */
int engine_restore_begin(struct engine *e, uint64_t now_ms);
/* In ascending id order (a look-up by id is then a step, not a search). */
int engine_restore_message(struct engine *e, const struct engine_restore_msg *m, const char **why);
/* handle: what the store wants back in its calls about the session. */
int engine_restore_session(struct engine *e, const struct engine_store_session *s, void *handle,
			   const char **why);
int engine_restore_subscription(struct engine *e, const struct midge_str *client_id,
				const struct midge_str *filter, uint8_t options, uint32_t sub_id,
				const char **why);
/* Returns 1 when the delivery did not fit the session's queue bounds
 * (configured lower since): dropped, and the store forgets it; the later
 * ones of the session will not fit either. */
int engine_restore_queued(struct engine *e, const struct midge_str *client_id, uint64_t msg_id,
			  const struct engine_store_delivery *d, const char **why);
/* In send order. msg_id 0 only with ENGINE_STORE_AWAIT_PUBCOMP. */
int engine_restore_flight(struct engine *e, const struct midge_str *client_id, uint16_t packet_id,
			  enum engine_store_flight state, uint64_t msg_id,
			  const struct engine_store_delivery *d, const char **why);
int engine_restore_qos2(struct engine *e, const struct midge_str *client_id, uint16_t packet_id,
			const char **why);
int engine_restore_will(struct engine *e, const struct midge_str *client_id,
			const struct engine_restore_msg *will, uint32_t delay, const char **why);
int engine_restore_retained(struct engine *e, const struct midge_str *topic, uint64_t msg_id,
			    const char **why);
/* In seq order per log; an entry of a log no longer configured is
 * dropped (returns 1: the store forgets it). */
int engine_restore_history(struct engine *e, const struct midge_str *filter, uint64_t seq,
			   uint64_t at, uint64_t msg_id, const char **why);
/*
 * Restoring is complete (call after engine_store_attach()): deadlines are
 * set by wall-clock time (session expiry and will delay count from when
 * the connection ended, or from now for sessions that were connected when
 * the broker stopped); sessions and wills already due end now, through the
 * store. Returns 0 or -1 on OOM.
 */
int engine_restore_end(struct engine *e, uint64_t now_ms);
/* Frees what an unfinished restore holds (after a failed call). */
void engine_restore_abort(struct engine *e);

#endif
