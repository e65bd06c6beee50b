/*
 * internal.h - the engine's shared structs and the calls its rooms make to
 * one another. Not installed, not for the transport: engine.h is the
 * engine's interface.
 *
 * Rooms (one concern each; every file's opening comment says what it owns):
 *   dispatch.c   engine_conn_input() and engine_conn_frame(): framing, decoding,
 *                dispatch, PINGREQ, DISCONNECT, protocol and framing errors
 *   connect.c    CONNECT in named steps, CONNACK, refusals, pending auth
 *   authx.c      MQTT 5 enhanced authentication: AUTH exchanges, re-authentication
 *   conn.c       connection lifetime: open, close request, teardown, keepalive
 *   session.c    sessions: client-id table, take-over, detach, expiry
 *   will.c       the will and its delay
 *   alias.c      topic aliases both ways
 *   publish.c    inbound PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, QoS 2 ids
 *   route.c      matching, shared groups, receive ACL, subscriber kinds
 *   deliver.c    the outbound PUBLISH, window, queue, resend
 *   flight.c     packet ids in flight both ways (outgoing ring, incoming QoS 2 set)
 *   output.c     other packets towards the client
 *   subscribe.c  SUBSCRIBE, UNSUBSCRIBE, retained messages on subscribe
 *   message.c    refcounted messages
 *   timer.c      the deadline heap and engine_tick()
 *   event.c      event emission
 *   limits.c     configured bounds, the check shared by PUBLISH and will
 *   store.c      the no-op store (engine/store.h), views of messages for a store
 *   hold.c       acknowledgements held until the store made them durable;
 *                refusals while the store cannot write
 *   restore.c    rebuilding sessions, queues, windows, retained messages
 *                and logs from a store at start-up
 *   history.c    replay logs (midge_history) and $replay/ subscriptions
 *   bridge.c     bridges as receivers (engine/bridge.h): their queue and window
 *                towards the remote, their store records, messages from the remote
 *   cluster.c    what the cluster (NATS) hears: interest per filter, messages
 *                to forward, retained changes; messages from other nodes
 *   move.c       a session handed to or from another node (engine/move.h)
 *   checkpoint.c each persistent session's copy in the cluster, adopted
 *                sessions of a node that died (engine/move.h)
 *   engine.c     engine_new/free, configuration, engine_publish, statistics
 *   query.c      the administrator's view (engine/query.h): clients, subscriptions,
 *                retained messages, kick, publish as the administrator
 *
 * Objects:
 *   struct emsg     one accepted message, immutable and refcounted: topic,
 *                   payload frame, forwardable v5 properties. Every queue,
 *                   in-flight slot and the retained store hold references.
 *   struct session  what survives a connection: subscriptions, outgoing
 *                   in-flight window, offline queue, incoming QoS 2 ids,
 *                   the pending will. Kept in a hash table by client id.
 *   struct engine_conn  one network connection; attached to at most one
 *                   session once CONNECT is accepted.
 *
 * Reason codes: inside the engine a reason code is always the positive
 * MQTT 5 value (MQTT_RC_*, carried as uint8_t; 0 is success). Only the
 * codec returns negated codes (-MQTT_RC_MALFORMED ...); they are turned
 * positive at the call that receives them. Functions that can only
 * succeed or fail return 0 or -1.
 */
#ifndef MIDGE_ENGINE_INTERNAL_H
#define MIDGE_ENGINE_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/topic.h"


/* Subscription identifiers kept per queued or inflight delivery (as many
 * as a store keeps: engine/store.h). */
#define ENGINE_SUBIDS 4
_Static_assert(ENGINE_SUBIDS == ENGINE_STORE_SUBIDS, "a stored delivery keeps every identifier");
/* QoS 0 heads cached per fan-out: (v5?2:0) | retain. */
#define HEAD_SHAPES 4
#define HEAD_CACHE_MAX 320

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

#define SUB_QOS(o) ((uint8_t)((o)&3u))
#define SUB_NO_LOCAL 0x04u
#define SUB_RAP 0x08u
#define SUB_RH(o) ((uint8_t)(((o) >> 4) & 3u))

#define EXPIRY_NEVER UINT32_MAX
/* The largest packet MQTT can express: advertised only when lower. */
#define ENGINE_PROTOCOL_MAX_PACKET (CODEC_MAX_REMAINING + CODEC_MAX_FIXED_HEADER)

/* Properties a PUBLISH or will carries on to receivers unchanged. */
#define FORWARD_PROPS                                                                            \
	(CODEC_PROP_BIT(CODEC_PROP_PAYLOAD_FORMAT) | CODEC_PROP_BIT(CODEC_PROP_CONTENT_TYPE) |    \
	 CODEC_PROP_BIT(CODEC_PROP_RESPONSE_TOPIC) | CODEC_PROP_BIT(CODEC_PROP_CORRELATION_DATA) | \
	 CODEC_PROP_BIT(CODEC_PROP_USER_PROPERTY))

enum tkind {
	T_KEEPALIVE = 1,
	T_WILL = 2,
	T_EXPIRY = 3,
	T_RETAINED = 4, /* a retained message's expiry */
	T_AUTH = 5,     /* an enhanced authentication exchange's deadline */
};

struct timer_node {
	uint64_t at;
	uint32_t idx; /* position in the heap + 1; 0 when not scheduled */
	uint8_t kind;
};

struct emsg {
	uint64_t id; /* stable: what a store knows the message by */
	uint32_t refs;
	uint8_t qos;
	bool retain;
	uint16_t topic_len;
	uint32_t props_len;
	uint32_t origin_len;
	/* kind T_RETAINED: the message has an expiry, due at .at (ms); it is
	 * scheduled while the retained store holds the message
	 * (retained_set()). kind 0: no expiry. */
	struct timer_node expiry;
	uint64_t origin;    /* serial of the publishing session; 0 for the broker;
			     * EMSG_ORIGIN_RESTORED: a client before a restart */
	/* a retained message's publisher, for check_retain_source: its user
	 * name (NULL: anonymous) and listener */
	char *origin_user;
	uint32_t origin_user_len;
	uint16_t origin_listener;
	struct frame *payload;
	/* forwardable ones, views into data; NULL without properties (most
	 * messages: the record stays small enough for the 256-byte frame
	 * class, which matters with a million of them queued) */
	struct codec_props *props;
	uint8_t *topic;
	uint8_t *raw_props;
	char *origin_id;
	uint8_t data[];
};

/* The publisher of a restored message from a client: no session's serial
 * (they count from 1), not the broker's 0. */
#define EMSG_ORIGIN_RESTORED UINT64_MAX

static inline bool emsg_has_expiry(const struct emsg *m)
{
	return m->expiry.kind != 0;
}

/* A pending will: allocated only for sessions that have one. */
struct will {
	struct timer_node t; /* T_WILL: the will delay */
	struct emsg *m;
	struct session *s;
	uint32_t delay;
};

struct sub {
	struct sub *next, *prev; /* the session's list, newest first */
	struct session *owner;
	uint32_t sub_id;
	uint32_t hv; /* sub_hash(owner, filter): its cell in engine.sub_table */
	uint16_t len;
	uint8_t options;
	uint8_t filter[];
};

enum slot_state {
	SLOT_PUBACK = 1,  /* QoS 1 sent, waiting for PUBACK */
	SLOT_PUBREC = 2,  /* QoS 2 sent, waiting for PUBREC */
	SLOT_PUBCOMP = 3, /* PUBREL sent, waiting for PUBCOMP */
};

struct delivery {
	struct emsg *m;
	uint8_t qos;
	bool retain;
	bool shared; /* chosen through a shared subscription (route_share_out) */
	uint8_t n_sub_ids;
	uint32_t sub_ids[ENGINE_SUBIDS];
};

struct slot {
	struct delivery d; /* d.m is NULL once PUBREL was sent */
	uint16_t pid;
	uint8_t state;
	/* Sent on an earlier connection and not yet again on this one: the
	 * resumed client's Receive Maximum had no room (session_resend). */
	bool unsent;
};

/*
 * What the topic tree stores for a subscription: a kind and, by kind, the
 * record it is embedded in (container_of). Routing dispatches on the kind
 * (route.c), so a receiver that is not a session (a bridge, a cluster
 * link) adds a kind, not a cast.
 */
enum subscriber_kind {
	SUBSCRIBER_SESSION = 1,
	SUBSCRIBER_HISTORY = 2, /* a replay log (history.c) */
	SUBSCRIBER_BRIDGE = 3,  /* a bridge to another broker (bridge.c) */
};

struct subscriber {
	uint8_t kind;
};

/* Ordered by size so that an idle session wastes no padding (one per
 * client id: thousands of idle ones are the common case). */
struct session {
	struct session *hash_next;
	uint64_t serial;
	struct engine_conn *conn;
	struct will *will; /* NULL: no pending will */
	struct sub *subs;
	struct journal_wait *jwait; /* a journal replay for it is under way (journal.c) */
	void *store;            /* the store's handle while it keeps the session (expiry not 0) */
	struct slot *flight;    /* outgoing QoS 1/2 in send order, a ring (flight.c) */
	struct delivery *queue; /* ring */
	uint16_t *rel;          /* set of incoming QoS 2 ids awaiting PUBREL (flight.c) */
	uint64_t queue_bytes;
	/* the store's ticket that makes its creation durable (0: durable
	 * already): a resume's CONNACK waits for it too */
	uint64_t saved_ticket;
	struct timer_node expiry_timer;
	/* who the session's last connection was (user name, listener): what
	 * the receive ACL asks about while the session is offline */
	char *user; /* NULL: anonymous */
	uint32_t user_len;
	uint32_t cid_len;
	uint32_t hash;
	uint32_t expiry; /* seconds; EXPIRY_NEVER; 0 ends with the connection */
	uint32_t n_subs;
	uint32_t ck; /* checkpoint.c: CK_SAVED | place in engine.ck_dirty */
	uint32_t queue_cap, queue_head, queue_len;
	uint32_t route_gen; /* route generation of the hit below */
	uint32_t route_hit; /* index in engine.hits for this generation */
	uint32_t flight_bytes; /* bytes of the messages in the ring (emsg_size); see flight_room() */
	/* at most 65535 packet ids in flight either way */
	uint16_t n_inflight;  /* live slots in the ring */
	uint16_t flight_span; /* ring positions from the oldest to the newest, holes included */
	uint16_t flight_head; /* ring index of the oldest position */
	uint16_t flight_pid;  /* packet id of the oldest position; the next is this + span */
	uint16_t n_rel;
	uint16_t n_unsent;  /* slots with unsent set ... */
	uint16_t unsent_at; /* ... none before this position from the oldest */
	uint8_t flight_cap_log2, rel_cap_log2;
	uint8_t version;
	bool recv_held; /* a delivery's answer is awaited: all queue behind it, in order */
	uint16_t listener;
	struct subscriber subscriber; /* what the topic tree holds for it */
	char cid[]; /* cid_len bytes and a NUL, in the same allocation */
};

struct alias {
	uint8_t *p;
	uint16_t len;
	uint16_t cap;
};

/* A topic alias midge set towards a client. */
struct out_alias {
	uint32_t hash;
	uint16_t len;
	uint8_t *topic;
};

/* Outgoing aliases used per connection at most: lookups are linear. */
#define OUT_ALIAS_CAP 32

/* A connection's topic aliases (MQTT 5 only, and rare): out of line, so
 * the connection record of every other client is a pointer smaller. */
struct conn_aliases {
	struct alias *in;       /* in_alias_max entries once the client uses one */
	struct out_alias *out;  /* OUT_ALIAS_CAP entries when the client accepts aliases */
};

/* In this order: "before CONNECT was accepted" is state < CONN_UP. */
enum conn_state {
	CONN_NEW = 0,
	CONN_AUTH_PENDING = 1, /* CONNECT held until engine_conn_auth_done() */
	CONN_UP = 2,
	CONN_CLOSING = 3,
};

#define PEER_TEXT_MAX 108 /* a Unix socket path (sun_path); INET6_ADDRSTRLEN is 46 */

/* Ordered by size so that an idle connection wastes no padding. */
struct engine_conn {
	struct engine *e;
	struct engine_conn *prev, *next;
	void *handle;
	struct session *s;
	const char *close_why;
	struct conn_aliases *aliases; /* NULL until a topic alias is used either way */
	struct connect_held *held;    /* CONN_AUTH_PENDING: the CONNECT waiting */
	struct authx *ax;             /* v5 enhanced authentication (authx.c), or NULL */
	struct held_acks *acks;       /* acknowledgements waiting for the store (hold.c) */
	uint64_t last_packet_ms;
	uint64_t claim;                  /* its CONNECT waits for the cluster's claim (move.c) */
	struct engine_conn *claim_next;  /* engine.claims */
	struct timer_node keepalive_timer;
	struct midge_client info;
	uint32_t client_max_packet;  /* the client's maximum packet size, 0 = none */
	uint16_t keepalive;
	uint16_t client_receive_max; /* the client's receive maximum: our outgoing window */
	uint16_t in_alias_max;       /* aliases we accept */
	uint16_t receive_max;        /* our receive maximum, as advertised */
	uint16_t out_alias_max;      /* aliases we use towards the client (its maximum, capped) */
	uint16_t out_alias_used;     /* aliases assigned so far, 1..out_alias_used */
	uint8_t state;               /* enum conn_state */
	uint8_t version;
	uint8_t close_rc;            /* with close_why, close_by_client: the cause the */
	bool close_cause_set;        /* disconnect event reports, once recorded */
	bool close_by_client;
	bool counted_connected;      /* counted in clients_connected */
	bool problem_info;           /* v5 request problem information */
	bool bridge;                 /* CONNECT level 0x83/0x84: a Mosquitto bridge */
	bool normal_disconnect;      /* normal DISCONNECT: no will */
	bool expiry_zero;            /* CONNECT had session expiry 0 [MQTT-3.14.2-2] */
	bool cid_own;                /* info.client_id is our own copy (the session is gone) */
	/* the CONNACK waits for the commit that makes its session (created,
	 * or a stored one discarded) durable: nothing is sent before it and
	 * nothing more is read (hold.c); connack_resend: resend the window
	 * when it goes */
	bool connack_held;
	bool connack_resend;
	bool username_as_clientid;   /* the listener's use_username_as_clientid */
	bool auth_expiry_capped;     /* the auth module capped the session expiry: */
	uint32_t auth_expiry_max;    /* ... at this (engine_conn_cap_expiry) */
	uint16_t mount_len;          /* the listener's mount_point, mount[0..mount_len) */
	char *mount;
	uint8_t versions;            /* protocol levels the listener accepts (bit 1 << level), 0 = all */
	char peer[];         /* NUL-terminated, sized to the text: "127.0.0.1" takes 10 bytes, not 46 */
};

/* One receiver of the message being routed. */
struct hit {
	struct subscriber *to;
	uint8_t qos;
	bool retain_as_published;
	bool shared;
	uint8_t n_sub_ids;
	uint32_t sub_ids[ENGINE_SUBIDS];
};

struct head_cache {
	const struct emsg *m;
	bool valid[HEAD_SHAPES];
	uint16_t len[HEAD_SHAPES];
	uint32_t total[HEAD_SHAPES];
	uint8_t buf[HEAD_SHAPES][HEAD_CACHE_MAX];
};

/* A session's encoding being written (move.c grows p within max). */
struct move_buf {
	uint8_t *p;
	size_t len, cap, max;
	bool oom;
};

struct engine {
	struct engine_config cfg;
	struct engine_io io;
	struct engine_auth auth;
	bool has_auth;
	bool acl_on; /* auth.acl is set and asked (engine_set_acl) */
	bool acl_ask; /* auth.acl may answer ENGINE_AUTH_PENDING (engine_set_acl_ask) */
	/* While a client's PUBLISH or SUBSCRIBE is checked: a PENDING answer
	 * holds the packet (acl_held set) instead of refusing it. */
	bool acl_may_hold, acl_held;
	bool acl_offline; /* a delivery to a session without connection is checked */
	bool memory_full; /* memory_limit reached (engine_set_memory_full) */
	struct engine_store store; /* engine_store_none unless attached */
	uint64_t store_changes;    /* store calls made: did a packet report anything? */
	uint64_t durable;          /* the store's ticket reached (engine_store_durable) */
	struct held_acks *holding; /* connections with acknowledgements held */
	struct engine_cluster cluster; /* engine_cluster_attach(); has_cluster */
	bool has_cluster;
	struct engine_conn *claims; /* CONNECTs waiting for the cluster's claim (move.c) */
	bool ck_on;                 /* the cluster keeps checkpoints (checkpoint.c) */
	bool releasing;             /* engine_cluster_release: the id is another node's */
	struct session **ck_dirty;  /* sessions changed since their checkpoint (NULL: ended) */
	uint32_t ck_n, ck_cap;
	struct move_buf ck_buf;     /* reused by every checkpoint */
	struct journal *jr;         /* the cluster's journal (journal.c); NULL: none */
	uint64_t claim_seq;
	uint64_t cluster_sent;     /* the cluster's ticket reached (engine_cluster_sent) */
	uint64_t cluster_ticket;   /* the ticket of the message publish_accept just forwarded */
	const char *store_failing; /* why the store cannot write; NULL while it can */
	struct restore *restore;   /* between engine_restore_begin() and _end() */
	struct history **histories; /* replay logs, in configuration order */
	uint32_t n_histories;
	uint64_t history_seq;      /* the last entry number given to any log */
	struct engine_bridge *bridges; /* bridge.c */
	uint64_t msg_ids;          /* the last message id given */
	uint64_t now;
	struct topic_tree *tree;
	struct retain_store *retained;
	size_t broker_retained; /* topics the broker itself retains ($SYS): not held to the bound */
	struct session **session_table;
	uint32_t table_size, table_count;
	/* Every session's subscriptions by (session, filter), open addressing
	 * kept at most half full: a SUBSCRIBE or UNSUBSCRIBE entry is one probe,
	 * not a scan of the session's list, so a client with many
	 * subscriptions cannot make them quadratic. One table for all
	 * sessions keeps an idle session free of it. */
	struct sub **sub_table;
	uint32_t sub_table_cap, sub_table_n;
	struct engine_conn *conns;
	struct timer_node **heap;
	uint32_t nheap, cap_heap;
	uint64_t serial;
	uint64_t ids_assigned;
	uint32_t route_gen;
	struct hit *hits;
	uint32_t nhits, cap_hits;
	struct emsg **retained_matches; /* retained matches of one SUBSCRIBE entry */
	uint32_t n_retained_matches, cap_retained_matches;
	uint8_t *scratch;
	size_t cap_scratch;
	uint8_t *mount_buf; /* conn_mount()'s result */
	size_t cap_mount_buf;
	const struct emsg *fanout; /* the message being routed; its heads may be cached */
	struct emsg *event_msg;    /* the message of the event io.event is being called with */
	struct head_cache head_cache;
	struct engine_stats st;
	uint32_t event_mask; /* engine_set_event_mask */
	uint32_t sample_left; /* publishes until io.sample's next call */
};


/* timer.c */
void timer_cancel(struct engine *e, struct timer_node *t);
int timer_set(struct engine *e, struct timer_node *t, uint64_t at);

/* session.c */
uint32_t engine_hash_bytes(const void *p, size_t n);
struct session *session_find(struct engine *e, const uint8_t *cid, size_t len);
void session_client(const struct session *s, struct midge_client *out);
int session_set_owner(struct session *s, const struct midge_client *cl);
struct session *session_new(struct engine *e, const uint8_t *cid, size_t len);
void session_destroy(struct engine *e, struct session *s);
void session_expire(struct engine *e, struct session *s);
void session_detach(struct engine *e, struct session *s, bool publish);

/* subscribe.c */
void sub_unlink(struct engine *e, struct sub *x);
void session_take_over(struct engine *e, struct session *s, bool clean_start);

/* cluster.c */
void cluster_interest(struct engine *e, const uint8_t *filter, size_t len, bool on);
void cluster_sub_interest(struct engine *e, const struct session *s, const uint8_t *filter,
			  size_t len, bool on);
void cluster_share_presence(struct engine *e, const struct session *s, bool on);
bool cluster_forward(struct engine *e, const struct emsg *m, const struct midge_client *from);
bool cluster_shares(const struct engine *e, const uint8_t *topic, size_t len);
void cluster_retained(struct engine *e, const uint8_t *topic, size_t len, const struct emsg *m);
bool cluster_full(const struct engine *e);
void cluster_will(struct engine *e, const struct session *s);

/* message.c */
void emsg_unref_cb(void *m);
size_t emsg_size_cb(const void *m);
struct emsg *emsg_new(struct engine *e, const uint8_t *topic, size_t tlen,
			     const uint8_t *payload, size_t plen, const uint8_t *props,
			     size_t props_len, uint8_t qos, bool retain, uint64_t origin,
			     const uint8_t *origin_id, size_t olen, bool will);
int emsg_set_source(struct emsg *m, const struct midge_client *from);
char *engine_dup_bytes(const void *p, size_t n);
uint32_t emsg_remaining_expiry(const struct engine *e, const struct emsg *m);

/* event.c */
void event_init(struct engine *e, struct midge_event *ev, enum midge_event_type type,
		       const struct midge_client *client);
void event_emit(struct engine *e, struct midge_event *ev);
void event_message(struct engine *e, enum midge_event_type type, const struct midge_client *cl,
			 const struct emsg *m, const struct session *to, uint8_t qos, uint16_t pid,
			 bool dup, enum midge_drop_reason drop, const char *why);
void event_drop(struct engine *e, const struct session *s, const struct emsg *m, uint8_t qos,
		      enum midge_drop_reason drop, const char *why);
void event_session(struct engine *e, enum midge_event_type type, const struct session *s,
			 const struct midge_client *cl, const char *why);
void event_acked(struct engine *e, struct engine_conn *c, const struct slot *sl,
		       const struct emsg *m);

/* output.c */
int client_write(struct engine *e, struct engine_conn *c, const uint8_t *b, size_t n,
		      struct frame *tail, bool droppable);
void output_reason_string(const struct engine_conn *c, struct codec_props *p, uint8_t type,
			 const char *why);
size_t output_encode(struct engine *e, struct engine_conn *c, struct codec_packet *p,
		     struct codec_props *props);
int output_packet(struct engine *e, struct engine_conn *c, struct codec_packet *p,
		       struct codec_props *props);
void output_ack(struct engine *e, struct engine_conn *c, uint8_t type, uint16_t pid, uint8_t rc,
		     const char *why);
void output_disconnect(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why);

/* deliver.c */
void session_enqueue(struct engine *e, struct session *s, struct delivery *d);
void session_dequeue(struct engine *e, struct session *s, struct delivery *out);
void session_deliver(struct engine *e, struct session *s, struct emsg *m,
			    struct delivery *d);
void session_offer(struct engine *e, struct session *s, struct emsg *m, struct delivery *d);
void session_drain(struct engine *e, struct session *s);
void session_resend(struct engine *e, struct session *s);

/* route.c */
/* Delivers m to every matching subscription; with no_shared the shared
 * groups are left out (the cluster gives them m: route_message_group). */
uint32_t route_message(struct engine *e, struct emsg *m, bool no_shared);
uint32_t route_message_filter(struct engine *e, struct emsg *m, const uint8_t *f, size_t flen,
			      bool no_shared);
/* Offers m to the group of shared subscription f ("$share/NAME/F") only.
 * Returns the number of receivers (0 or 1). */
uint32_t route_message_group(struct engine *e, struct emsg *m, const uint8_t *f, size_t flen);
/* s's session ends: what it was given through a shared subscription and
 * has not acknowledged goes to another member of the group. */
void route_share_out(struct engine *e, struct session *s);

/* publish.c */
uint32_t publish_accept(struct engine *e, struct emsg *m, const struct midge_client *from,
			       uint16_t pid, bool dup);
int publish_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p);
int publish_handle_ack(struct engine *e, struct engine_conn *c, struct codec_packet *p);
uint8_t publish_props_check(const struct engine *e, const struct codec_props *props,
			    const void *payload, size_t len, bool *fatal, const char **why);
bool publish_retain_room(struct engine *e, const uint8_t *topic, size_t len, size_t size);

/* alias.c */
/* An outgoing alias decision for one PUBLISH. */
struct alias_choice {
	uint16_t alias; /* 0: none */
	bool is_new;    /* this packet teaches it */
	uint32_t hash;  /* of the topic */
};
uint8_t alias_resolve(struct engine_conn *c, uint16_t a, const uint8_t **topic, size_t *len,
		      const char **why);
void alias_out_enable(struct engine_conn *c, uint16_t client_max);
struct alias_choice alias_out_choose(const struct engine_conn *c, const uint8_t *topic,
				     size_t len);
void alias_out_learn(struct engine_conn *c, const struct alias_choice *ch, const uint8_t *topic,
		     size_t len);
void alias_free(struct engine_conn *c);

/* will.c */
uint8_t will_build(struct engine *e, struct engine_conn *c, const struct codec_connect *k,
		   const uint8_t *cid, size_t cid_len, struct will **out, const char **why);
void will_free(struct will *w);
void will_clear(struct engine *e, struct session *s);
void will_publish(struct engine *e, struct session *s);

/* connect.c */
struct connect_held;
int connect_handle(struct engine *e, struct engine_conn *c, const uint8_t *body, uint32_t len,
		   struct codec_packet *p, int rc);
void connect_held_cancel(struct engine *e, struct engine_conn *c);
void connect_held_free(struct engine_conn *c);
int connect_held_finish(struct engine *e, struct engine_conn *c, int rc, const char *why);
const uint8_t *connect_held_cid(const struct engine_conn *c, size_t *len);

#include "engine/move.h" /* move.c, checkpoint.c: sessions between cluster nodes */

/* authx.c */
struct authx;
int authx_connect(struct engine *e, struct engine_conn *c, const struct codec_connect *k,
		  const char **why);
int authx_packet(struct engine *e, struct engine_conn *c, struct codec_packet *p, int rc);
bool authx_reads(const struct engine_conn *c);
void authx_connack_props(const struct engine_conn *c, struct codec_props *pr);
void authx_fire(struct engine *e, struct timer_node *t);
void authx_cancel(struct engine *e, struct engine_conn *c);
void authx_free(struct engine *e, struct engine_conn *c);

/* limits.c */
bool limits_acl_allows(struct engine *e, const struct midge_client *cl, const uint8_t *topic,
		       size_t len, enum engine_access access, uint8_t qos, bool retain);
enum recv_verdict { RECV_OK, RECV_DENIED /* reported */, RECV_HELD /* queue, ask at the drain */ };
enum recv_verdict limits_receive(struct engine *e, struct session *s, const struct emsg *m,
				 uint8_t qos, bool retain);
bool limits_retain_source_ok(struct engine *e, const struct emsg *m);
bool limits_topic_too_deep(const struct engine *e, const uint8_t *p, size_t n);
enum limits_verdict {
	LIMITS_OK = 0,
	LIMITS_QOS,
	LIMITS_RETAIN,
	LIMITS_SIZE,
	LIMITS_DEPTH,
	LIMITS_ACL,
	LIMITS_MEMORY,
	LIMITS_HELD, /* the ACL's answer is pending: the packet waits (publish.c) */
	LIMITS__COUNT
};
struct limits_answer {
	uint8_t rc;     /* reason code */
	bool fatal;     /* PUBLISH: close the connection instead of acknowledging */
	const char *why;
};
extern const struct limits_answer limits_answer_publish[LIMITS__COUNT];
extern const struct limits_answer limits_answer_will[LIMITS__COUNT];
enum limits_verdict limits_check_message(struct engine *e, const struct midge_client *from,
					 const uint8_t *topic, size_t len, size_t payload_len,
					 uint8_t qos, bool retain);

/* subscribe.c */
int sub_apply(struct engine *e, struct session *s, const uint8_t *f, size_t len, uint8_t options,
	      uint32_t sub_id);
int subscribe_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p);
int unsubscribe_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p);

/* conn.c: a topic or filter of c as the broker keeps it (mount_point) */
int conn_mount(struct engine *e, const struct engine_conn *c, const uint8_t **p, size_t *n);

/* dispatch.c */
int client_fail(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why);

/* conn.c */
void client_request_close(struct engine *e, struct engine_conn *c, uint8_t rc, bool by_client,
		       const char *why);
void client_teardown(struct engine *e, struct engine_conn *c);
void client_keepalive_fire(struct engine *e, struct engine_conn *c);

/* The session's client id as a string view (for the store). */
static inline struct midge_str session_id(const struct session *s)
{
	struct midge_str id = {s->cid, s->cid_len};
	return id;
}

void session_store_save(struct engine *e, struct session *s);

/*
 * Small calls of the per-message path, inline so that splitting the
 * engine into rooms costs no call per delivery.
 */
/* Connected, and its CONNACK went out: deliveries may be sent. */
static inline bool client_is_up(const struct engine_conn *c)
{
	return c && c->state == CONN_UP && !c->connack_held;
}

static inline struct emsg *emsg_ref(struct emsg *m)
{
	m->refs++;
	return m;
}

void emsg_free(struct emsg *m);

/* The event and store view of m. */
static inline void emsg_view(const struct emsg *m, struct midge_message *v, uint16_t pid, bool dup)
{
	memset(v, 0, sizeof *v);
	v->topic.p = (const char *)m->topic;
	v->topic.len = m->topic_len;
	v->payload = m->payload->data;
	v->payload_len = m->payload->len;
	v->qos = m->qos;
	v->retain = m->retain;
	v->dup = dup;
	v->packet_id = pid;
	v->props = m->raw_props;
	v->props_len = m->props_len;
	v->origin.p = m->origin_id;
	v->origin.len = m->origin_len;
}


/* Drops one reference; emsg_unref(NULL) does nothing. */
static inline void emsg_unref(struct emsg *m)
{
	if (m && --m->refs == 0)
		emsg_free(m);
}

static inline size_t emsg_size(const struct emsg *m)
{
	return (size_t)m->topic_len + m->payload->len + m->props_len;
}

int output_scratch_grow(struct engine *e, size_t n);

/* Makes the encode scratch buffer hold n bytes. Returns 0 or -1 on OOM. */
static inline int output_scratch_reserve(struct engine *e, size_t n)
{
	return n <= e->cap_scratch ? 0 : output_scratch_grow(e, n);
}

/* flight.c: packet ids in flight both ways. */
struct slot *flight_at(struct session *s, uint32_t k);
struct slot *flight_find(struct session *s, uint16_t pid);
bool flight_room(const struct engine *e, const struct session *s, uint32_t w, size_t size);
struct slot *flight_reserve(struct session *s);
struct slot *flight_place(struct session *s, uint16_t pid);
void flight_commit(struct engine *e, struct session *s);
void flight_release_message(struct session *s, struct slot *sl);
void flight_remove(struct engine *e, struct session *s, struct slot *sl);
void flight_free(struct engine *e, struct session *s);
bool rel_has(const struct session *s, uint16_t pid);
int rel_insert(struct session *s, uint16_t pid);
bool rel_delete(struct session *s, uint16_t pid);

int retained_set(struct engine *e, const uint8_t *topic, size_t len, struct emsg *m);
void retained_expire(struct engine *e, struct emsg *m);

/* ---- the store (store.c, hold.c) ----------------------------------------- */

/* Every store call goes through here: each counts as a change, so hold.c
 * can tell whether handling a packet reported anything. */
#define STORE_CALL(e, fn, ...) ((e)->store_changes++, (e)->store.fn((e)->store.ctx, __VA_ARGS__))

void store_msg_view(const struct emsg *m, struct engine_store_msg *out);
void store_delivery_view(const struct delivery *d, struct engine_store_delivery *out);

/* Regrows a ring of n elements of esize bytes (*ring, *cap, *head) to ncap
 * elements, oldest first at index 0. Returns 0 or -1 on OOM (unchanged). */
int ring_regrow(void *ring, size_t esize, uint32_t *cap, uint32_t *head, uint32_t n,
		uint32_t ncap);

/* hold.c: acknowledgements that wait for the store. */
/* The ticket an acknowledgement must wait for: 0 when the store wants
 * none, or when nothing was reported since `before` (e->store_changes
 * then) and conservative is false. conservative: wait for everything
 * reported so far (an acknowledgement that repeats one whose state may not
 * be durable yet). */
uint64_t hold_ticket(struct engine *e, uint64_t before, bool conservative);
/* An acknowledgement packet (PUBACK, PUBREC, PUBREL, PUBCOMP) to c: sent
 * now, or after ticket is durable and behind every acknowledgement already
 * held for c (the order the specification requires, 4.6). */
void hold_ack(struct engine *e, struct engine_conn *c, uint64_t ticket, uint8_t type, uint16_t pid,
	      uint8_t rc, const char *why);
/* hold_ack() that also waits until the cluster has the message forwarded
 * with cticket (engine_cluster_sent), 0 = none. */
void hold_ack_cluster(struct engine *e, struct engine_conn *c, uint64_t ticket, uint64_t cticket,
		      uint8_t type, uint16_t pid, uint8_t rc, const char *why);
/* The same for an encoded packet (SUBACK, UNSUBACK): bytes are copied. */
void hold_packet(struct engine *e, struct engine_conn *c, uint64_t ticket, struct codec_packet *p,
		 struct codec_props *props);
/* Whether c holds so many acknowledgements, or its CONNACK, that no more
 * input is read. */
bool hold_full(const struct engine_conn *c);
/* Acknowledgements held for c (its connection is gone) are dropped. */
void hold_free(struct engine *e, struct engine_conn *c);
/* Held PUBACKs and PUBCOMPs on c: they count against midge's receive
 * maximum (the client still counts those exchanges open). */
uint32_t hold_count(const struct engine_conn *c);
/* engine_conn_input stops reading c for hold_full(). */
void hold_stop_input(struct engine_conn *c);

/* history.c */
void history_append(struct engine *e, struct subscriber *sb, struct emsg *m);
void history_free_all(struct engine *e);
/* The $replay/SPEC/FILTER subscription filter f: FILTER's position and the
 * replay asked for. Returns 0, 1 when f is not a replay filter, or -1 when
 * it is one but malformed. */
struct replay_spec {
	uint8_t kind; /* REPLAY_LAST, REPLAY_SINCE, REPLAY_ALL */
	uint64_t n;   /* LAST: messages; SINCE: unix seconds */
	const uint8_t *filter;
	size_t len;
};
enum { REPLAY_LAST = 1, REPLAY_SINCE = 2, REPLAY_ALL = 3 };
int history_parse_replay(const uint8_t *f, size_t len, struct replay_spec *out);
/* Delivers to s the logged messages matching the replay, oldest first. */
void history_replay(struct engine *e, struct session *s, const struct replay_spec *r, uint8_t qos,
		    uint8_t options, uint32_t sub_id);
struct history *history_find(struct engine *e, const uint8_t *filter, size_t len);
int history_restore(struct engine *e, struct history *h, uint64_t seq, uint64_t at, struct emsg *m);
void history_trim_all(struct engine *e);

/* bridge.c */
struct engine_bridge;
bool bridge_match(struct engine *e, struct subscriber *sb, const struct emsg *m, struct hit **h,
		  bool *merged);
void bridge_deliver(struct engine *e, struct subscriber *sb, struct emsg *m, uint8_t qos);
void bridge_free(struct engine *e, struct engine_bridge *b);
void bridge_free_all(struct engine *e);
/* hold.c: the store or the cluster reached a ticket: each bridge's
 * answers to its remote that waited for it go, in order. */
void bridge_release_answers(struct engine *e);
/* A store's client id that names a bridge queue (it starts with U+0000). */
bool bridge_is_key(const struct midge_str *cid);
int bridge_restore_session(struct engine *e, const struct engine_store_session *rs, void *handle,
			   const char **why);
struct engine_bridge *bridge_restored(struct engine *e, const struct midge_str *cid,
				      const char **why);
int bridge_restore_queued(struct engine *e, struct engine_bridge *b, struct emsg *m,
			  const struct engine_store_delivery *d, const char **why);
int bridge_restore_flight(struct engine *e, struct engine_bridge *b, uint16_t pid, uint8_t state,
			  struct emsg *m, const struct engine_store_delivery *d, const char **why);
void bridge_restore_end(struct engine *e);

/* session.c: the store forgets s (its queue and window released). */
void session_store_forget(struct engine *e, struct session *s);
/* restore.c: a session's timers after a restore. */
void session_arm_timers(struct engine *e, struct session *s, uint64_t ended_at);

#endif
