/*
 * bridge.h - what the engine offers a bridge (bridge/: an MQTT client
 * linking this broker to another one): a receiver of its own kind in the
 * topic tree (SUBSCRIBER_BRIDGE, not a session), its queue and in-flight
 * window towards the remote broker, and the way messages from the remote
 * enter the engine.
 *
 * Out (local -> remote): engine_bridge_subscribe() puts the bridge's
 * local filters in the topic tree with Mosquitto's bridge options
 * (no-local, retain as published). A matching message is queued (bounded
 * by max_queued_messages / max_queued_bytes as a session's queue) and the
 * `ready` callback tells the link; the link takes messages with
 * engine_bridge_next() while it is connected and the window has room, and
 * reports the remote's PUBACK / PUBREC / PUBCOMP with engine_bridge_ack().
 * A QoS 1/2 message leaves the engine only when its flow completed, so a
 * remote that goes away loses nothing: on reconnect (engine_bridge_up())
 * the window is sent again first, with DUP (or PUBREL), in the order it
 * was first sent, then the queue in order.
 *
 * Persistence: with a store attached, the queue and window are reported
 * as those of a session whose client id is "\0bridge:NAME" (a U+0000 no
 * MQTT client id can contain [MQTT-1.5.4-2], so no client can meet it),
 * and restored from it: the queue survives a restart.
 *
 * In (remote -> local): engine_bridge_publish() accepts a message as a
 * PUBLISH from a client called local_clientid; its origin is the bridge,
 * so the bridge's own subscriptions never send it back (no loops). Its
 * acknowledgement goes through engine_bridge_answer(), which holds it
 * until the store committed the message, as a client's PUBACK is held
 * (hold.c).
 *
 * Every call is on the engine's thread.
 */
#ifndef MIDGE_ENGINE_BRIDGE_H
#define MIDGE_ENGINE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"

struct engine;
struct engine_bridge;

/* Called (during routing: only note it, act later) when the bridge's
 * queue grew. */
typedef void (*engine_bridge_ready_cb)(void *ctx);
/* An acknowledgement for the remote (PUBACK, PUBREC or PUBCOMP, rc its v5
 * reason code) may go now: from engine_bridge_answer() itself, or later
 * from engine_store_durable() / engine_cluster_sent(). Only note it (put
 * it in the output): the engine is in the middle of something. */
typedef void (*engine_bridge_answer_cb)(void *ctx, uint8_t type, uint16_t packet_id, uint8_t rc);

/* One packet for the remote: a PUBLISH, or a PUBREL resent after a
 * reconnect. Views stay valid until the next call about this bridge. */
struct engine_bridge_out {
	uint8_t type; /* CODEC_PUBLISH or CODEC_PUBREL */
	uint8_t qos;
	bool retain; /* as published */
	bool dup;
	uint16_t packet_id; /* 0 for QoS 0 */
	const uint8_t *topic; /* the local topic: the link maps it */
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	struct codec_props props; /* forwardable v5 properties, message expiry left */
};

/*
 * Declares bridge `name` (its store key) with `client_id` (what events
 * and message origins name: local_clientid). Declare before restoring and
 * before the first connection. Returns NULL when the name is taken or
 * empty, or on OOM.
 */
struct engine_bridge *engine_bridge_add(struct engine *e, const char *name, const char *client_id,
					engine_bridge_ready_cb ready, void *ctx);

/* Changes who hears that the queue grew (NULL: nobody): a link that
 * goes away while the engine stays. */
void engine_bridge_set_ready(struct engine_bridge *b, engine_bridge_ready_cb ready, void *ctx);

/* Who sends the acknowledgements engine_bridge_answer() releases (NULL:
 * nobody; they are dropped). */
void engine_bridge_set_answer(struct engine_bridge *b, engine_bridge_answer_cb answer, void *ctx);

/* A local filter whose messages go to the remote at most at qos. Returns
 * 0, or -1 when the filter is invalid or on OOM. */
int engine_bridge_subscribe(struct engine_bridge *b, const char *filter, uint8_t qos);

/* The remote accepted the connection: at most window QoS 1/2 messages in
 * flight (the smaller of ours and its receive maximum); what was in
 * flight goes again first. */
void engine_bridge_up(struct engine_bridge *b, uint16_t window);
/* The connection to the remote is gone: messages wait in the queue;
 * answers still held are dropped (the remote sends their messages
 * again). */
void engine_bridge_down(struct engine_bridge *b);

/* The next packet for the remote. Returns 1 with *out, 0 when there is
 * none to send now (nothing queued, or the window is full). */
int engine_bridge_next(struct engine_bridge *b, uint64_t now_ms, struct engine_bridge_out *out);

/* PUBACK, PUBREC or PUBCOMP from the remote (rc its v5 reason code, 0 in
 * 3.x). Returns 1 when a PUBREL must answer it (a PUBREC), else 0; an
 * unknown packet id is ignored (0), except that a PUBREC for an id we do
 * not know is answered with PUBREL as well (the remote's state wins). */
int engine_bridge_ack(struct engine_bridge *b, uint8_t type, uint16_t packet_id, uint8_t rc);

/* Messages waiting for the remote (queued and in flight). */
uint32_t engine_bridge_pending(const struct engine_bridge *b);

/* A message from the remote, its topic already mapped to the local one.
 * Checked as a client's PUBLISH is (topic, size, depth); retained when
 * retain is set. props: the raw v5 properties (NULL in 3.x). Returns 0
 * when accepted, or a reason code (it was not published: log it). */
uint8_t engine_bridge_publish(struct engine_bridge *b, const uint8_t *topic, size_t topic_len,
			      const uint8_t *payload, size_t payload_len, const uint8_t *props,
			      size_t props_len, uint8_t qos, bool retain, uint64_t now_ms);

/*
 * Every acknowledgement towards the remote goes through here: PUBACK and
 * PUBREC for its PUBLISHes (accepted or not), PUBCOMP for its PUBRELs.
 * Nothing acknowledged is lost: with a store, the answer waits until
 * everything reported so far (the message it acknowledges among it) is
 * durable, and the cluster confirmed the last message it forwarded; and
 * it stays behind every answer still waiting, so they keep the order
 * 4.6 requires [MQTT-4.6.0-2] [MQTT-4.6.0-3]. The answer callback gets it
 * when it may go (at once when nothing waits). Returns 0, or -1 on OOM
 * (fail the link: the remote sends it again).
 */
int engine_bridge_answer(struct engine_bridge *b, uint8_t type, uint16_t packet_id, uint8_t rc);

#endif
