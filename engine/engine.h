/*
 * engine.h - MQTT broker semantics, sans I/O.
 *
 * The transport hands the engine complete packets (first byte + body) and
 * the current time; the engine answers through struct engine_io: bytes to
 * queue on a connection, connections to close, events to publish. The
 * engine makes no system call, never reads the clock and never logs: time
 * is a parameter, and what a human should read is an event.
 *
 * A connection's lifetime: engine_conn_open() when accepted; any number of
 * engine_conn_frame(); the engine may ask io->close(); the transport calls
 * engine_conn_closed() exactly once when the socket is gone (whoever closed
 * it), after which the struct engine_conn is freed.
 */
#ifndef MIDGE_ENGINE_H
#define MIDGE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/frame.h"
#include "midge.h"

struct engine;
struct engine_conn;

/* Every bound the engine enforces; engine_config_default() gives the
 * defaults documented in docs/configuration.md. 0 means "no limit" only
 * where noted. */
struct engine_config {
	uint32_t max_packet_size;          /* largest packet accepted (framer limit) */
	uint32_t max_packet_before_connect;/* framer limit until CONNECT is accepted */
	uint16_t max_inflight;             /* max_inflight_messages: outgoing QoS 1/2 window */
	uint64_t max_inflight_bytes;       /* max_inflight_bytes: the same window in bytes, 0 = none */
	uint16_t receive_max;              /* advertised v5 receive maximum (incoming window) */
	uint32_t max_queued_messages;      /* per offline/overflow queue; 0 = ENGINE_MAX_QUEUED */
	uint64_t max_queued_bytes;         /* per queue, 0 = no byte bound */
	/* Broker-wide bounds, 0 = none (ENGINE_DEFAULT_* below) */
	uint32_t max_sessions;             /* sessions, connected or not: CONNACK 0x97 past it */
	uint32_t max_retained_messages;    /* retained topics: a new one is refused (0x97) */
	uint64_t max_retained_bytes;       /* retained bytes (emsg_size) */
	/* acknowledgements waiting for the store, all connections together:
	 * past it a connection that holds one is read no more (hold.c) */
	uint32_t max_acks_held;
	bool queue_qos0_messages;
	uint16_t max_keepalive;            /* v5 server keep alive when client asks more (0 = none) */
	uint32_t max_client_id_len;
	bool allow_zero_length_clientid;
	bool allow_anonymous;
	uint32_t max_subscriptions;        /* per client, 0 = no limit */
	uint32_t max_topic_levels;
	uint8_t max_qos;
	bool retain_available;
	bool wildcard_sub_available;
	bool sub_id_available;
	bool shared_sub_available;
	bool check_payload_format;         /* v5 payload format indicator 1: payload must be UTF-8 */
	uint16_t topic_alias_max;          /* aliases accepted from each client */
	uint32_t persistent_client_expiration; /* seconds; 0 = never, for 3.1.1 persistent sessions */
	uint32_t max_session_expiry;       /* cap on v5 session expiry, seconds; 0 = no cap */
	uint32_t retry_interval_ms;        /* unused for MQTT 5 (retry only on reconnect) */
	bool upgrade_outgoing_qos;
	uint32_t message_size_limit;       /* max PUBLISH and will payload, 0 = none */
	bool check_retain_source;          /* a retained message goes out only while its
					    * publisher may still publish on its topic */
	/* MQTT 5 enhanced authentication [MQTT-4.12] (authx.c): each bounds
	 * one exchange (a CONNECT's, or a re-authentication's) */
	uint16_t auth_max_rounds;          /* AUTH 0x18 midge may send in one exchange */
	uint32_t auth_max_data;            /* Authentication Data bytes either way, per packet */
	uint32_t auth_exchange_ms;         /* from CONNECT or AUTH 0x19 to its end */
};

/*
 * The in-flight window's defaults. Mosquitto's 20 messages keeps a fast
 * subscriber waiting for acknowledgements (at fan-in QoS 1 on loopback
 * 20 gives 0.18 M msg/s, 1000 gives 1.35 M: docs/PERFORMANCE.md); the byte
 * bound keeps what one slow subscriber pins to 1 MiB whatever the message
 * size. Each is what a v5 client is told as well (receive maximum).
 */
#define ENGINE_DEFAULT_INFLIGHT 1000
#define ENGINE_DEFAULT_INFLIGHT_BYTES (1024u * 1024u)
/* Per client: a new filter past it is refused 0x97 (3.x: 0x80). */
#define ENGINE_DEFAULT_MAX_SUBSCRIPTIONS 10000u

/*
 * Broker-wide bounds: what no number of well-behaved clients may make
 * the broker hold. Large enough not to be met by ordinary deployments
 * (a million devices with a retained state topic each), small enough that
 * their memory (about 200 B per idle session, a message's size plus some
 * 100 B per retained topic) fits a small server.
 */
#define ENGINE_DEFAULT_MAX_SESSIONS 1000000u
#define ENGINE_DEFAULT_MAX_RETAINED 1000000u
#define ENGINE_DEFAULT_MAX_RETAINED_BYTES (1024ull * 1024u * 1024u)
/* Held acknowledgements (a few dozen bytes each, and the batch a commit
 * writes for them): a thousand publishers with their receive maximum's
 * worth waiting at once would be 10^6. */
#define ENGINE_DEFAULT_MAX_ACKS_HELD 100000u

/* What max_queued_messages 0 ("unlimited" in Mosquitto) means: every
 * queue stays bounded. max_queued_bytes still applies on top. */
#define ENGINE_MAX_QUEUED 1048576u

void engine_config_default(struct engine_config *cfg);

/* How the engine reaches the outside world. */
struct engine_io {
	void *ctx;
	/*
	 * Queue bytes on the connection `handle`: head[0..head_len) is copied
	 * by the transport during the call; tail (may be NULL) is sent after
	 * it and the transport takes its own reference if it keeps it.
	 * droppable marks a QoS 0 delivery the transport may refuse when the
	 * connection's output queue is over its byte bound. Returns 0 when
	 * queued, -1 when refused (the engine counts it and emits a drop).
	 */
	int (*send)(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		    struct frame *tail, bool droppable);
	/* Close the connection once what is queued is flushed. The
	 * transport later calls engine_conn_closed(). */
	void (*close)(void *ctx, void *handle);
	/* A lifecycle event; see midge.h. Views inside are valid during the call. */
	void (*event)(void *ctx, const struct midge_event *ev);
	/* Read the connection again: engine_conn_input() returned
	 * ENGINE_CONN_HELD because it holds too many acknowledgements waiting
	 * for the store (or its CONNACK), and enough of them went out. May be NULL when no
	 * store that holds acknowledgements is attached. */
	void (*resume)(void *ctx, void *handle);
	/*
	 * A sample of the published messages' topics (may be NULL): called for
	 * one PUBLISH accepted in every `gap`, where gap is what the previous
	 * call returned (1 the first time; 0 is taken as 1). The sampler draws
	 * the gaps, so the engine pays one decrement per message, and no event.
	 */
	uint32_t (*sample)(void *ctx, const uint8_t *topic, size_t len);
};

/* What engine_auth.acl is asked (the values of enum midge_acl_access):
 * PUBLISH a topic (a PUBLISH or a will), SUBSCRIBE a filter (refuse only
 * when no topic it matches could be received), RECEIVE a topic. */
enum engine_access {
	ENGINE_ACCESS_PUBLISH = MIDGE_ACL_PUBLISH,
	ENGINE_ACCESS_SUBSCRIBE = MIDGE_ACL_SUBSCRIBE,
	ENGINE_ACCESS_RECEIVE = MIDGE_ACL_RECEIVE,
};

/* What engine_auth.connect returns when it decides later. */
#define ENGINE_AUTH_PENDING (-1)

/* Which packet engine_auth.enhanced is asked about [MQTT-4.12]: the
 * CONNECT carrying an Authentication Method, the client's AUTH 0x18
 * (Continue authentication), its AUTH 0x19 (Re-authenticate). */
enum engine_auth_step {
	ENGINE_AUTH_STEP_CONNECT = 0,
	ENGINE_AUTH_STEP_CONTINUE = 1,
	ENGINE_AUTH_STEP_REAUTH = 2,
};

/*
 * Authentication and authorization decisions. Any callback may be NULL
 * (allow). Return 0 to allow or a v5 reason code to refuse
 * (MQTT_RC_BAD_USERNAME_OR_PASSWORD, MQTT_RC_NOT_AUTHORIZED, ...).
 *
 * connect may also return ENGINE_AUTH_PENDING (a password hash to compute,
 * an auth worker to ask): the engine holds the CONNECT and the module
 * later calls engine_conn_auth_done() for engine_conn_of(client). The
 * views in client, username and password are valid during the call only.
 * If the connection goes away first, connect_cancel (may be NULL) is
 * called with the same client, and engine_conn_auth_done() must not be
 * called for it any more. The engine sets no deadline on a pending decision:
 * the module answers, or refuses when its own timeout expires.
 */
struct engine_auth {
	void *ctx;
	int (*connect)(void *ctx, const struct midge_client *client, const struct midge_str *username,
		       const struct midge_str *password);
	/*
	 * acl may also return ENGINE_AUTH_PENDING for a PUBLISH or a
	 * SUBSCRIBE of a connected client, or a delivery (RECEIVE:
	 * engine_acl_may_wait says when; never for a will or a retained
	 * message's source, where PENDING refuses). A PUBLISH or SUBSCRIBE
	 * packet is not handled and stays unread
	 * (engine_conn_input, ENGINE_CONN_HELD below) until the module has
	 * the answer and the transport feeds the input again; the same
	 * packet is then decoded anew and asks again, and the module must
	 * answer from what it learnt. A SUBSCRIBE asks for every filter
	 * before it applies any (engine_set_acl_ask), so the replay finds
	 * none half applied.
	 *
	 * qos and retain are what the access is about, so a module can
	 * decide by them (EMQX's rules do): PUBLISH, the message's QoS and
	 * retain flag (a will's; a retained message's source: its QoS,
	 * retain true); SUBSCRIBE, the QoS the client asked for (before
	 * max_qos lowers it), retain false; RECEIVE, the delivery's QoS (the
	 * lower of the message's and the subscription's) and the retain flag
	 * the receiver gets (true for a retained message sent on subscribe).
	 */
	int (*acl)(void *ctx, const struct midge_client *client, const uint8_t *topic, size_t len,
		   enum engine_access access, uint8_t qos, bool retain);
	void (*connect_cancel)(void *ctx, const struct midge_client *client);
	/*
	 * MQTT 5 enhanced authentication: one step of the exchange of the
	 * client's method (data.p NULL: the packet carried no Authentication
	 * Data). NULL: no method is served (CONNACK 0x8C). Return
	 * ENGINE_AUTH_PENDING and answer with engine_conn_auth_step(), or a
	 * reason code at once (MQTT_RC_BAD_AUTH_METHOD for a method nobody
	 * serves). connect_cancel is called, as for connect, when the
	 * connection of a client that used a method goes, a step pending or
	 * not (the module may keep state between steps). Views valid during
	 * the call only.
	 */
	int (*enhanced)(void *ctx, const struct midge_client *client, enum engine_auth_step step,
			const struct midge_str *method, const struct midge_str *data);
};

/* Broker-wide counters, for $SYS and the logs. */
struct engine_stats {
	uint64_t clients_connected;
	uint64_t clients_total;        /* connected + persistent sessions offline */
	uint64_t clients_maximum;
	uint64_t clients_expired;
	uint64_t msgs_received;
	uint64_t msgs_sent;
	uint64_t msgs_dropped;
	uint64_t bytes_received;       /* counted by the engine from frames */
	uint64_t bytes_sent;
	uint64_t publish_received;
	uint64_t publish_sent;
	uint64_t retained_count;
	uint64_t retained_bytes;
	uint64_t subscriptions_count;
	uint64_t inflight_count;
	uint64_t stored_count;         /* messages queued for sessions */
	uint64_t stored_bytes;
	uint64_t acl_denied;           /* publishes, subscriptions and deliveries refused */
	uint64_t acks_held;            /* acknowledgements waiting for the store now */
	uint64_t acks_held_pauses;     /* connections no more read for max_acks_held */
	uint64_t history_count;        /* messages in the replay logs */
	/* By QoS: PUBLISH accepted from clients (not the broker's own, not
	 * another node's) and deliveries written, with their payload bytes. */
	uint64_t publish_received_qos[3], publish_bytes_received_qos[3];
	uint64_t publish_sent_qos[3], publish_bytes_sent_qos[3];
	uint64_t drops_by_reason[16]; /* enum midge_drop_reason & 15 */
};

/* auth may be NULL (allow all). cfg and io are copied. NULL on OOM. */
struct engine *engine_new(const struct engine_config *cfg, const struct engine_io *io,
			  const struct engine_auth *auth);
/* Frees every session, message and connection state, without calling io.
 * engine_free(NULL) does nothing. */
void engine_free(struct engine *e);

/*
 * The message of the message event (message.*, retained.*) io.event is
 * being called with, NULL during any other call. A consumer that must
 * look at it after the call (the hooks thread renders it later) holds it
 * with engine_msg_hold() and gives it back with engine_msg_release(), both
 * on the engine's thread: the count is not atomic. While held, the bytes
 * the event's struct midge_message points to (topic, payload, properties,
 * origin) stay valid and unchanged, and may be read from any thread;
 * engine_msg_view() (any thread, while held) makes that view again, with
 * packet_id 0 and dup false (those are the event's own).
 */
struct emsg;
struct emsg *engine_event_msg(const struct engine *e);
void engine_msg_hold(void *m);
void engine_msg_release(void *m);
void engine_msg_view(const void *m, struct midge_message *v);
/* Whether engine_auth.acl is asked at all (on by default when it is
 * set): off, every topic is allowed but for the $ rule, and deliveries
 * skip the call. */
void engine_set_acl(struct engine *e, bool on);

/* Whether engine_auth.acl may answer ENGINE_AUTH_PENDING (auth workers
 * are configured): off (the default), a SUBSCRIBE asks once per filter
 * and a PENDING answer anywhere refuses. On, a SUBSCRIBE first asks for
 * all its filters and is held if any answer is pending. */
void engine_set_acl_ask(struct engine *e, bool on);
/* Whether the engine_auth.acl call in progress may answer
 * ENGINE_AUTH_PENDING: it is about a connected client's PUBLISH or
 * SUBSCRIBE, or a delivery (RECEIVE), and engine_set_acl_ask is on.
 * Anything else (a will, a retained message's source) must be answered
 * now. A held delivery is queued for its session, behind it all that
 * follows while the client is connected, and asked about again when
 * the session's queue drains: after engine_conn_receive_ready(), or on
 * the client's next connection. */
bool engine_acl_may_wait(const struct engine *e);
/* The engine_auth.acl call in progress is about a delivery to a session
 * without a connection: PENDING queues it as any offline delivery and
 * the question is asked again on resume, so there is nobody to ask for
 * now (engine_conn_of(client) is not valid). */
bool engine_acl_offline(const struct engine *e);
/* An answer about a delivery to c's session came (the module answered
 * ENGINE_AUTH_PENDING to a RECEIVE for it): its queue drains again, and
 * the delivery asks again. Does nothing when nothing waits. */
void engine_conn_receive_ready(struct engine *e, struct engine_conn *c);

/* memory_limit: while full, every PUBLISH and will is refused (QoS > 0:
 * the acknowledgement says 0x97 in MQTT 5; a will: CONNACK 0x97). The
 * transport measures and sets it. */
void engine_set_memory_full(struct engine *e, bool full);

/* Applies new limits (SIGHUP). Existing connections keep what they
 * negotiated. */
void engine_reconfigure(struct engine *e, const struct engine_config *cfg);

/*
 * A new connection. peer_addr is copied. handle is what io calls receive.
 * Returns NULL on OOM (the transport closes the socket).
 */
struct engine_conn *engine_conn_open(struct engine *e, void *handle, const char *peer_addr,
				     uint16_t peer_port, bool tls, uint64_t now_ms);

/* What the listener c came through decides: its number
 * (midge_client.listener, for per-listener security), the protocol levels
 * it accepts (bit 1 << level; 0 = all; others get CONNACK "unsupported
 * protocol version"), use_username_as_clientid (the user name replaces
 * the client id; no user name, CONNACK "not authorized") and its
 * mount_point (NULL or "": none; copied): the client's topics and filters
 * live under it, and what it receives has it taken off. Call before the
 * CONNECT arrives. Returns 0 or -1 (OOM). */
int engine_conn_set_listener(struct engine_conn *c, uint16_t listener, uint8_t versions,
			     bool username_as_clientid, const char *mount_point);

/* Sets the username from a TLS client certificate
 * (use_identity_as_username); call before the CONNECT arrives, or from
 * an auth module deciding the CONNECT (the user name it names). */
int engine_conn_set_identity(struct engine_conn *c, const char *username);

/* An auth module deciding c's CONNECT caps its session expiry interval
 * at `seconds` (v5: CONNACK says the value used). */
void engine_conn_cap_expiry(struct engine_conn *c, uint32_t seconds);

/* The peer's address as a PROXY protocol header gives it (the socket's
 * is the proxy's): what events, logs and ACL patterns see from now on.
 * Call before the CONNECT arrives. Returns 0, or -1 on OOM. */
int engine_conn_set_peer(struct engine_conn *c, const char *peer_addr, uint16_t peer_port);

/* The largest packet the framer may accept on this connection now (lower
 * before CONNECT is accepted). */
uint32_t engine_conn_max_packet(const struct engine_conn *c);
/* 0 until CONNECT is accepted (or refused), else 3, 4 or 5. */
uint8_t engine_conn_version(const struct engine_conn *c);
/* The client as the engine knows it (peer address as a PROXY header named
 * it, user name, client id once CONNECT is in); valid while c is. */
const struct midge_client *engine_conn_client(const struct engine_conn *c);

/*
 * Bytes from the connection, buf[0..n): the one framing loop
 * (codec_frames()) cuts them into packets against the connection's
 * current limit and hands each to engine_conn_frame(); input the framer
 * refuses (malformed, or larger than the limit) is answered as the
 * specification says for the connection's state and version (CONNACK,
 * DISCONNECT 0x81/0x95, or a plain close) and io->close. out->used is what was
 * consumed: the caller keeps buf[used..n) at the start of its buffer and
 * appends what arrives next; out->need, when non-zero, is the size that
 * incomplete packet will have. Returns 0 to go on reading, -1 once the
 * connection is closing (everything counts as used; feed it no more), or
 * ENGINE_CONN_HELD.
 */
struct codec_feed;
/* Returned by engine_conn_input() and engine_conn_frame() while a CONNECT
 * waits for its authentication decision, and by engine_conn_input() when
 * a packet waits for an access decision (below). engine_conn_input() then
 * consumed the CONNECT and nothing after it (out->used); the caller keeps
 * the rest and feeds it again after engine_conn_auth_done() returned 0
 * (it may stop reading meanwhile: before CONNECT is accepted its buffer is
 * bounded by max_packet_before_connect). engine_conn_frame() refuses
 * packets in that state (returns ENGINE_CONN_HELD, nothing done).
 * engine_conn_input() also returns it when the connection holds as many
 * acknowledgements waiting for the store as its receive maximum, or its
 * CONNACK waits for the store (a persistent session created or a stored
 * one discarded): the caller stops reading, keeps the rest, and feeds it
 * again when engine_io.resume is called for the connection.
 *
 * A packet waiting for an access decision (engine_auth.acl answered
 * ENGINE_AUTH_PENDING for a PUBLISH or SUBSCRIBE): engine_conn_input()
 * returns ENGINE_CONN_HELD with out->used ending *before* that packet
 * (it was decoded, not handled: no state changed, no byte counted), so
 * the caller keeps it at the start of what it keeps, stops reading the
 * connection, and feeds the kept input again once the auth module says
 * the answer is in (the module resumes the connection itself; the
 * engine is not told). The packet is decoded again and now finds its
 * answer. Nothing behind the held packet is read meanwhile, so the
 * client's order is kept; other connections go on. If the connection
 * goes first, the caller tells the module (its requests are forgotten)
 * before engine_conn_closed(). engine_conn_frame() returns
 * ENGINE_CONN_REPLAY for such a packet: not handled, feed it again. */
#define ENGINE_CONN_HELD 1
#define ENGINE_CONN_REPLAY 2
int engine_conn_input(struct engine *e, struct engine_conn *c, const uint8_t *buf, size_t n,
		      uint64_t now_ms, struct codec_feed *out);

/*
 * The authentication decision for a CONNECT held after engine_auth.connect
 * answered ENGINE_AUTH_PENDING: rc 0 accepts it (CONNACK, session, events,
 * as a synchronous answer would), a v5 reason code refuses it (any other
 * non-zero value refuses with MQTT_RC_NOT_AUTHORIZED). Returns 0 when
 * accepted (feed the held input again), -1 when refused or when c holds
 * no pending CONNECT (nothing done).
 */
int engine_conn_auth_done(struct engine *e, struct engine_conn *c, int rc, uint64_t now_ms);

/*
 * The answer to engine_auth.enhanced for c (data.p NULL or data NULL:
 * no Authentication Data): MQTT_RC_CONTINUE_AUTH sends AUTH 0x18 with
 * the method and data and reads the client's next AUTH; 0 accepts
 * (CONNACK 0x00, or AUTH 0x00 after a re-authentication, with the method
 * and data [MQTT-4.12.0-5]); a reason code refuses (CONNACK, or
 * DISCONNECT after a re-authentication [MQTT-4.12.1-2]). Returns 0 when
 * c goes on (feed its held input again), -1 when c is closing or no step
 * of it was pending (nothing done).
 */
int engine_conn_auth_step(struct engine *e, struct engine_conn *c, int rc,
			  const struct midge_str *data, uint64_t now_ms);

/* The connection a client record handed to engine_auth.connect belongs to. */
struct engine_conn *engine_conn_of(const struct midge_client *client);
/* The transport's handle given to engine_conn_open() (an auth module
 * answering later finds the transport's connection with it). */
void *engine_conn_handle(const struct engine_conn *c);

/*
 * One complete packet: first byte and body[0..len). The engine decodes it,
 * acts, and copies whatever it keeps before returning. Returns 0 to go on
 * reading, -1 once the connection is closing (the engine has queued the
 * CONNACK/DISCONNECT the specification prescribes and called io->close):
 * the transport must not feed it more; ENGINE_CONN_HELD while a CONNECT
 * waits for its authentication decision; ENGINE_CONN_REPLAY when the
 * packet waits for an access decision and was not handled (above).
 */
int engine_conn_frame(struct engine *e, struct engine_conn *c, uint8_t first,
		      const uint8_t *body, uint32_t len, uint64_t now_ms);

/* The socket is gone. Publishes the will if the end was abnormal, keeps
 * or drops the session, frees c. why (may be NULL) goes into the event. */
void engine_conn_closed(struct engine *e, struct engine_conn *c, const char *why, uint64_t now_ms);

/*
 * Deadlines: keepalive (1.5 x the interval), will delay, session expiry,
 * message expiry. Call at least once a second. Returns the earliest
 * pending deadline in ms (UINT64_MAX if none).
 */
uint64_t engine_tick(struct engine *e, uint64_t now_ms);

/*
 * After the rules changed (a reload): asks keep() about every connected
 * client; those it refuses get DISCONNECT 0x87 (v5) and are closed (their
 * wills go out as for any unrequested end). Returns how many.
 */
uint32_t engine_recheck(struct engine *e, bool (*keep)(void *ctx, const struct midge_client *cl),
			void *ctx, uint64_t now_ms);

/* Graceful stop: v5 clients get DISCONNECT 0x8B, every connection is
 * asked to close. */
void engine_shutdown(struct engine *e, uint64_t now_ms);

/* A message from the broker itself ($SYS, the embedding API). Validates
 * the topic. Returns 0 or -1. */
int engine_publish(struct engine *e, const uint8_t *topic, size_t topic_len, const void *payload,
		   size_t payload_len, uint8_t qos, bool retain, uint64_t now_ms);

void engine_stats(const struct engine *e, struct engine_stats *out);

/*
 * The message events (published, delivered, acked, dropped, will,
 * retained.*) io.event is called with: bit t set = type t is built and
 * sent; the others cost nothing. Every other event is always sent, and
 * every count in engine_stats is kept either way. Default: all. The
 * transport sets it once per loop pass from what its consumers want.
 */
void engine_set_event_mask(struct engine *e, uint32_t types);

/*
 * A replay log (midge_history FILTER MAX_MESSAGES [MAX_AGE_SECONDS]): the
 * engine keeps the last max_messages messages published on topics that
 * match filter (none older than max_age_s, 0 = no age bound), which a
 * SUBSCRIBE to $replay/SPEC/FILTER delivers before going on live (see
 * docs/persistence.md). Add before restoring and before the first
 * connection. Returns 0, or -1 when filter is invalid or on OOM.
 */
int engine_history_add(struct engine *e, const char *filter, uint32_t max_messages,
		       uint32_t max_age_s);

/*
 * The cluster (cluster/, over NATS): what the engine tells it and what it
 * hands the engine. Every call is on the engine thread; the views are
 * valid during the call only (a cluster copies what it keeps).
 *
 * interest: a filter gained its first subscription on this node (on) or
 * lost its last (!on) - the cluster subscribes in NATS only to those; a
 * shared one comes whole ("$share/NAME/F"): the cluster delivers each
 * message for it to one node's group (the publisher's own included), so
 * the engine leaves shared groups out of what it routes locally. publish: a message accepted on this
 * node (from a client, a will, the broker itself, but never one that came
 * from the cluster) goes to the other nodes, encoded once. It returns 0
 * and sets *ticket (0: nothing to wait for; else the acknowledgement of a
 * QoS 1/2 PUBLISH waits until engine_cluster_sent() reaches it), or -1
 * when the cluster cannot take it (its buffer is full). room: whether a
 * QoS 1/2 message would be taken now (else the PUBLISH is refused as
 * while the store fails: 0x97 in MQTT 5, a close in 3.x). retained: the
 * retained message of a topic was set (m) or cleared (NULL) on this node.
 */
struct engine_cluster_msg {
	const uint8_t *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *props; /* raw v5 PUBLISH properties, NULL when none */
	size_t props_len;
	const uint8_t *origin_id; /* the publishing client's id (empty: the broker) */
	size_t origin_len;
	uint64_t expiry_at; /* wall-clock ms the message expires, 0 = never */
	/* the journal's order (docs/cluster.md, "The journal"): the
	 * publishing node's run (random at its start) and its count of QoS
	 * 1/2 messages; 0 and 0 for QoS 0 */
	uint64_t node_run, seq;
	uint8_t qos;
	bool retain;
};

struct engine_cluster {
	void *ctx;
	void (*interest)(void *ctx, const uint8_t *filter, size_t len, bool on);
	int (*publish)(void *ctx, const struct engine_cluster_msg *m, uint64_t *ticket);
	bool (*room)(void *ctx);
	void (*retained)(void *ctx, const uint8_t *topic, size_t len, const struct engine_cluster_msg *m);
	/* May be NULL. An authenticated CONNECT of client id cid: the
	 * cluster claims the id for this node (cluster/owner.c) and answers
	 * engine_cluster_claimed(claim) later, on the engine thread. Returns
	 * 0 when it will (the CONNECT waits), -1 to go on at once (NATS
	 * unreachable: the node keeps serving). */
	int (*claim)(void *ctx, uint64_t claim, const uint8_t *cid, size_t len);
	/* May be NULL. The pending will of session cid is now will (delay
	 * in seconds), or it has none any more (NULL: published, discarded,
	 * or the session ended), so the cluster can publish the wills of a
	 * node that died (cluster/will.c). */
	void (*will)(void *ctx, const uint8_t *cid, size_t len, const struct engine_cluster_msg *will,
		     uint32_t delay);
	/* May be NULL (no checkpoints). The checkpoint of session cid, so
	 * another node can resume it if this one dies (cluster/state.c):
	 * its encoding (as engine_cluster_release's, valid during the call),
	 * or NULL/0 when the session ended here. Returns 0, or -1 when the
	 * cluster cannot take it now (its buffer is full): the session stays
	 * marked and is offered again. */
	int (*checkpoint)(void *ctx, const uint8_t *cid, size_t len, const uint8_t *state,
			  size_t state_len);
	/* May be NULL. The session of cid ended here (not handed to another
	 * node), so the cluster may give the client id back
	 * (cluster/owner.c) once no new session of it is here. */
	void (*ended)(void *ctx, const uint8_t *cid, size_t len);
	/* May be NULL (no journal). A session resumed from a dead node's
	 * checkpoint misses what reached that node after it: the cluster
	 * reads the journal from from_ms on and hands each message to
	 * engine_cluster_replay(job), then engine_cluster_replay_end(job).
	 * Returns the job (sessions asking before it starts share one), or
	 * 0 when it cannot (the session resumes as of its checkpoint). */
	uint64_t (*replay)(void *ctx, uint64_t from_ms);
	uint64_t node_run; /* this node's run: engine_cluster_msg.node_run */
};

/* Attaches a cluster (copied) before the first subscription exists (so
 * before restoring a store). */
void engine_cluster_attach(struct engine *e, const struct engine_cluster *cl);
/* The cluster is gone: the engine tells it nothing more. */
void engine_cluster_detach(struct engine *e);

/*
 * A message another node published, received here through the NATS
 * subscription of filter f[0..flen): delivered to this node's
 * subscriptions of exactly that filter, never sent back to the cluster.
 * f "$share/NAME/F" (a NATS queue group: one node of the cluster gets
 * each message, this node's own ones included) offers it to that group
 * only; the plain filter's delivery leaves the groups out. Returns the number of receivers, or -1 when
 * the message is invalid (its topic does not match f, bad properties).
 */
int engine_cluster_input(struct engine *e, const uint8_t *f, size_t flen,
			 const struct engine_cluster_msg *m, uint64_t now_ms);

/* The cluster has every message up to ticket: acknowledgements held for
 * it go out (engine/hold.c). */
void engine_cluster_sent(struct engine *e, uint64_t ticket, uint64_t now_ms);

/* The cluster-wide retained message of a topic changed (m, or NULL when
 * cleared): this node's retained store follows, without routing and
 * without telling the cluster again. Returns 0 or -1. */
int engine_cluster_retain(struct engine *e, const uint8_t *topic, size_t len,
			  const struct engine_cluster_msg *m, uint64_t now_ms);

/*
 * The answer to engine_cluster.claim: the held CONNECT goes on. session
 * (len bytes, from engine_cluster_release() on the node that had the
 * client id; NULL/0 when none moved) becomes this node's session of the
 * id first, so the CONNECT resumes it. Returns 0 when the CONNECT was
 * accepted, -1 when refused or when the connection is gone.
 */
int engine_cluster_claimed(struct engine *e, uint64_t claim, const uint8_t *session, size_t len,
			   uint64_t now_ms);

/*
 * The will of a client of a node that died (its lease lapsed), published
 * here for the cluster: m's props are the will's properties (its message
 * expiry counts from now). Routed here and forwarded to the cluster as a
 * broker message. Returns 0, or -1 when m is invalid.
 */
int engine_cluster_will(struct engine *e, const struct engine_cluster_msg *m, uint64_t now_ms);

/*
 * Another node took client id cid over: its connection here gets
 * DISCONNECT 0x8E (v5; 3.x closes), and a session that outlives it is
 * encoded into *out (malloc'd, at most max bytes: queued messages beyond
 * that are dropped as a full queue) and ends here without its will.
 * *out is NULL when no session moves. Returns 0, or -1 on OOM.
 */
int engine_cluster_release(struct engine *e, const uint8_t *cid, size_t len, size_t max,
			   uint8_t **out, size_t *out_len, uint64_t now_ms);

/*
 * Offers the checkpoint of every persistent session that changed since
 * its last one to engine_cluster.checkpoint, oldest change first, each
 * at most max bytes (deliveries beyond it are left out of the copy, not
 * dropped), until budget bytes were offered or the cluster's buffer is
 * full (the rest wait for the next call). Returns the number offered.
 */
uint32_t engine_cluster_checkpoint(struct engine *e, size_t max, size_t budget, uint64_t now_ms);

/*
 * The checkpoint of client id cid, from a node that died, becomes an
 * offline session here (its expiry counted from now), unless a session
 * of cid exists here already. Returns 0, or -1 when it is invalid or
 * not taken.
 */
int engine_cluster_adopt(struct engine *e, const uint8_t *cid, size_t len, const uint8_t *state,
			 size_t state_len, uint64_t now_ms);

/*
 * Journal replay (engine_cluster.replay): m, read back from the journal,
 * goes to the sessions of job that match it and did not have it yet
 * (its node_run and seq are past what their checkpoint held); until the
 * job's end, new messages for those sessions wait behind the replay, so
 * each publisher's order holds. Returns the receivers, or -1 when m is
 * invalid.
 */
int engine_cluster_replay(struct engine *e, uint64_t job, const struct engine_cluster_msg *m,
			  uint64_t now_ms);
/* The link to NATS is back after a break that began at from_ms: every
 * session here with a subscription the journal replays reads what it
 * missed meanwhile (what NATS stored and never passed on), as a resumed
 * session does. */
void engine_cluster_resync(struct engine *e, uint64_t from_ms, uint64_t now_ms);
/* The journal has nothing more for job: the messages that waited go out
 * (those the replay gave already are dropped). */
void engine_cluster_replay_end(struct engine *e, uint64_t job, uint64_t now_ms);

/*
 * The pending will of adopted session cid, from the node that died: it
 * becomes the session's will, published after delay seconds or when the
 * session ends, dropped if the client connects again [MQTT-3.1.3-9]; with
 * no such offline session here, it goes out now as engine_cluster_will's.
 * Returns 0, or -1 when m is invalid.
 */
int engine_cluster_adopt_will(struct engine *e, const uint8_t *cid, size_t len,
			      const struct engine_cluster_msg *m, uint32_t delay, uint64_t now_ms);

#endif
