/*
 * store.h - the calls the engine makes so that a persistence layer can keep
 * what must survive a restart: persistent sessions, their subscriptions,
 * queued and in-flight messages, incoming QoS 2 ids awaiting PUBREL,
 * wills, retained messages.
 *
 * The engine calls these only for state that outlives a connection: a
 * session is "stored" while its expiry is not 0 (clean sessions and their
 * traffic never reach the store), QoS 0 messages are never queued here,
 * retained messages always are. Calls are made on the engine's thread in
 * the order the changes happen; every view is valid during the call only,
 * so a store copies what it keeps (or hands it to its writer thread, which
 * must never touch engine state). A store that commits in batches groups
 * the calls of one loop pass.
 *
 * Without engine_store_attach() the engine uses a store whose calls do
 * nothing (store.c), which is today's behaviour: nothing survives.
 */
#ifndef MIDGE_ENGINE_STORE_H
#define MIDGE_ENGINE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

struct engine;

/* A persistent session as a resume needs it. */
struct engine_store_session {
	struct midge_str client_id;
	uint32_t expiry;        /* seconds after the connection ends; UINT32_MAX = never */
	uint8_t protocol;       /* 3, 4 or 5 */
};

/* The state of an outgoing QoS 1/2 delivery in flight. */
enum engine_store_flight {
	ENGINE_STORE_AWAIT_PUBACK = 1,
	ENGINE_STORE_AWAIT_PUBREC = 2,
	ENGINE_STORE_AWAIT_PUBCOMP = 3, /* PUBREL sent: the message body is no longer needed */
};

/*
 * Every member must be set (use the no-op store's for what a store does
 * not keep). client_id names the session each call is about.
 */
struct engine_store {
	void *ctx;
	/* The session was created or resumed as persistent, or its expiry
	 * changed (DISCONNECT may change it). */
	void (*session_saved)(void *ctx, const struct engine_store_session *s);
	/* The session ended (expired, discarded by a clean start, or its
	 * expiry became 0): everything stored under client_id goes. */
	void (*session_removed)(void *ctx, const struct midge_str *client_id);
	/* options is the SUBSCRIBE options byte; sub_id 0 = none. Added also
	 * replaces an existing subscription to the same filter. */
	void (*subscription_added)(void *ctx, const struct midge_str *client_id,
				   const struct midge_str *filter, uint8_t options, uint32_t sub_id);
	void (*subscription_removed)(void *ctx, const struct midge_str *client_id,
				     const struct midge_str *filter);
	/* A QoS 1/2 message was appended to the session's queue (msg->qos is
	 * the delivery's QoS). The same message queued for many sessions is
	 * the same msg->payload pointer: a store keeps the body once. */
	void (*message_queued)(void *ctx, const struct midge_str *client_id,
			       const struct midge_message *msg);
	/* The oldest queued message left the queue: sent (a flight_set for
	 * it follows) or dropped (expired, too large for the client). */
	void (*message_unqueued)(void *ctx, const struct midge_str *client_id);
	/* A delivery went on the wire with packet_id, or its state moved on. */
	void (*flight_set)(void *ctx, const struct midge_str *client_id, uint16_t packet_id,
			   enum engine_store_flight state, const struct midge_message *msg);
	/* The exchange of packet_id ended (PUBACK, PUBCOMP, or refused). */
	void (*flight_done)(void *ctx, const struct midge_str *client_id, uint16_t packet_id);
	/* An incoming QoS 2 id was recorded (PUBREC sent) or released (PUBREL). */
	void (*qos2_received)(void *ctx, const struct midge_str *client_id, uint16_t packet_id);
	void (*qos2_released)(void *ctx, const struct midge_str *client_id, uint16_t packet_id);
	/* The session's will, or NULL when it has none any more; delay in
	 * seconds. */
	void (*will_set)(void *ctx, const struct midge_str *client_id,
			 const struct midge_message *will, uint32_t delay);
	/* The retained message of msg->topic, or cleared (msg NULL, topic given). */
	void (*retained_set)(void *ctx, const struct midge_str *topic,
			     const struct midge_message *msg);
};

/* The store that keeps nothing: every call returns at once. */
extern const struct engine_store engine_store_none;

/* Makes the engine report to store (copied); NULL restores the no-op
 * store. Attach before the first connection: what happened before is not
 * replayed. */
void engine_store_attach(struct engine *e, const struct engine_store *store);

#endif
