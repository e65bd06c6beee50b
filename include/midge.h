/*
 * midge.h - the public API of libmidge, the embeddable midge MQTT broker.
 *
 * A program creates a broker, configures it (the same keys as the midge
 * configuration file, which are Mosquitto's), adds listeners, registers
 * callbacks for lifecycle events, and runs it. Callbacks run on the
 * broker's loop thread, in registration order, before the broker acts on
 * the event's outcome; they must not block.
 *
 * Every view (struct midge_str, payload pointers) handed to a callback is
 * valid only during the call: copy what you keep.
 */
#ifndef MIDGE_H
#define MIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIDGE_EVENT_SCHEMA 1

/* A string or byte view; not NUL-terminated. */
struct midge_str {
	const char *p;
	size_t len;
};

/*
 * Lifecycle events. The numbers are frozen: new events get new numbers.
 * The dotted names (midge_event_name()) are the ZeroMQ topics and are
 * frozen too; docs/events.md is the contract.
 */
enum midge_event_type {
	MIDGE_EV_CONNECT = 1,          /* client.connected: CONNACK 0 sent */
	MIDGE_EV_CONNECT_REFUSED = 2,  /* client.refused: CONNACK with an error */
	MIDGE_EV_DISCONNECT = 3,       /* client.disconnected: connection gone */
	MIDGE_EV_PING = 4,             /* client.ping */
	MIDGE_EV_SUBSCRIBE = 5,        /* client.subscribed: one per filter */
	MIDGE_EV_UNSUBSCRIBE = 6,      /* client.unsubscribed: one per filter */
	MIDGE_EV_PUBLISH = 7,          /* message.published: accepted from a client or the broker */
	MIDGE_EV_DELIVER = 8,          /* message.delivered: written to a subscriber */
	MIDGE_EV_ACKED = 9,            /* message.acked: QoS 1/2 delivery acknowledged */
	MIDGE_EV_DROP = 10,            /* message.dropped: see enum midge_drop_reason */
	MIDGE_EV_WILL = 11,            /* message.will: a will was published */
	MIDGE_EV_RETAIN_SET = 12,      /* retained.set */
	MIDGE_EV_RETAIN_CLEAR = 13,    /* retained.cleared */
	MIDGE_EV_SESSION_CREATED = 14, /* session.created */
	MIDGE_EV_SESSION_RESUMED = 15, /* session.resumed */
	MIDGE_EV_SESSION_TAKEOVER = 16,/* session.taken_over: an older connection was closed */
	MIDGE_EV_SESSION_EXPIRED = 17, /* session.expired */
	MIDGE_EV_SESSION_DISCARDED = 18,/* session.discarded: clean start dropped old state */
	MIDGE_EV_PROTOCOL_ERROR = 19,  /* client.protocol_error: bad input, before the close */
	MIDGE_EV_ACL_DENIED = 20,      /* acl.denied: a publish, subscribe or receive refused */
	MIDGE_EV_STORE = 21,           /* store.status: persistence figures, failures, recovery */
	MIDGE_EV__COUNT
};

enum midge_drop_reason {
	MIDGE_DROP_NO_SUBSCRIBERS = 1,  /* nobody matched (informational) */
	MIDGE_DROP_QUEUE_FULL = 2,      /* offline queue or inflight bound reached */
	MIDGE_DROP_SLOW_CONSUMER = 3,   /* QoS 0 over the output byte bound */
	MIDGE_DROP_EXPIRED = 4,         /* v5 message expiry passed while queued */
	MIDGE_DROP_TOO_LARGE = 5,       /* larger than the receiver's maximum packet size */
	MIDGE_DROP_NOT_AUTHORIZED = 6,  /* ACL refused publish or receive */
	MIDGE_DROP_HOOK_BACKLOG = 7,    /* the event publisher's queue was full */
	MIDGE_DROP_PAYLOAD_FORMAT = 8,  /* v5 payload format indicator 1, payload not UTF-8 */
	MIDGE_DROP_RETAINED_FULL = 9,   /* a new retained message past the broker-wide bound */
	MIDGE_DROP_MEMORY_LIMIT = 10,   /* a publish while memory_limit is reached */
	MIDGE_DROP_STORE_FAILING = 11,  /* QoS 1/2 refused while the persistence store cannot write */
};

/* What an acl.denied event refused (the values of the engine's access
 * checks). */
enum midge_acl_access {
	MIDGE_ACL_PUBLISH = 1,   /* a PUBLISH or a will from the client */
	MIDGE_ACL_SUBSCRIBE = 2, /* a SUBSCRIBE filter nothing readable matches */
	MIDGE_ACL_RECEIVE = 3,   /* a message the client is subscribed to */
};

/* Who an event is about. Fields are empty/0 when not known yet. */
struct midge_client {
	struct midge_str client_id;
	struct midge_str username;
	const char *peer_addr;  /* NUL-terminated text address; NULL once the connection is gone (a delayed will) */
	uint16_t peer_port;
	uint8_t protocol;       /* 3, 4, 5; 0 before CONNECT */
	bool tls;
	uint16_t listener;      /* the listener it came through: 1, 2, ... in the configuration's order; 0 unknown */
};

/* A message as published. `props` is the raw MQTT 5 property block
 * (possibly empty); read user properties with midge_message_user_property(). */
struct midge_message {
	struct midge_str topic;
	const void *payload;
	size_t payload_len;
	uint8_t qos;
	bool retain;
	bool dup;
	uint16_t packet_id;           /* 0 for QoS 0 or broker-originated */
	const uint8_t *props;
	size_t props_len;
	struct midge_str origin;      /* client id of the publisher; empty for the broker */
};

struct midge_event {
	enum midge_event_type type;
	uint64_t time_ms;             /* milliseconds since the Unix epoch */
	const struct midge_client *client; /* NULL for broker-wide events */
	union {
		struct {
			bool clean_start;
			bool session_present;
			uint16_t keep_alive;
			uint32_t session_expiry;
			bool has_will;
			uint8_t rc;          /* CONNACK code in the client's version */
			const char *why;     /* refusals: a human reason */
		} connect;               /* CONNECT, CONNECT_REFUSED */
		struct {
			uint8_t rc;          /* v5 reason code (also used for 3.1.1 causes) */
			bool by_client;      /* the client sent DISCONNECT / closed */
			bool will;           /* the will will be (or was) published */
			const char *why;     /* human reason: "keepalive timeout", ... */
		} disconnect;            /* DISCONNECT, PROTOCOL_ERROR */
		struct {
			struct midge_str filter;
			uint8_t qos;
			bool no_local;
			bool retain_as_published;
			uint8_t retain_handling;
			uint32_t sub_id;
			uint8_t rc;          /* granted QoS or v5 failure code */
			uint16_t packet_id;
		} subscribe;             /* SUBSCRIBE, UNSUBSCRIBE (filter, rc, packet_id) */
		struct {
			const struct midge_message *msg;
			struct midge_str to;    /* receiver client id: DELIVER, ACKED, DROP */
			uint8_t qos;            /* QoS of this delivery */
			uint16_t packet_id;     /* packet id of this delivery */
			enum midge_drop_reason drop;
			const char *why;
		} message;               /* PUBLISH, DELIVER, ACKED, DROP, WILL, RETAIN_SET, RETAIN_CLEAR */
		struct {
			uint32_t expiry;     /* session expiry interval, seconds */
			uint32_t queued;     /* messages held for the session */
			const char *why;
		} session;               /* SESSION_* */
		struct {
			struct midge_str topic; /* the topic, or the filter of a SUBSCRIBE */
			enum midge_acl_access access;
			const char *why;
			/* what the access was about (added after access and why,
			 * so the union's size and earlier offsets are unchanged):
			 * publish, the message's QoS and retain flag; subscribe, the
			 * QoS asked for, retain false; receive, the delivery's */
			uint8_t qos;
			bool retain;
		} acl;                   /* ACL_DENIED */
		struct {
			const char *state;   /* "ok", "failing", "recovered" (writes work again), "loaded" */
			const char *why;     /* failing: what the database said */
			uint64_t commits;    /* transactions committed since start */
			uint64_t messages;   /* message bodies written since start */
			uint64_t fsyncs;     /* fsync calls since start */
			uint64_t errors;     /* failed commits since start */
			uint64_t db_bytes;   /* database file and its WAL */
			double commit_ms_avg;/* since the previous store.status */
			double commit_ms_max;
			double messages_per_commit;
			double fsyncs_per_second;
		} store;                 /* STORE */
	} u;
};

typedef void (*midge_event_cb)(const struct midge_event *ev, void *user);

/* "client.connected", ... ; NULL for an unknown type. */
const char *midge_event_name(enum midge_event_type type);

/* Reads the user properties of a message in order. *pos starts at 0.
 * Returns 1 with the next pair, 0 at the end. */
int midge_message_user_property(const struct midge_message *msg, size_t *pos,
				struct midge_str *key, struct midge_str *value);

struct midge;

/* A broker with default configuration and no listener. NULL on OOM. */
struct midge *midge_new(void);
/* Stops (if running) and frees everything. midge_free(NULL) does nothing. */
void midge_free(struct midge *m);

/* One configuration line's worth: key and value as in midge.conf.
 * Returns 0 or -1 (and logs why). */
int midge_config_set(struct midge *m, const char *key, const char *value);
/* Reads a configuration file. Returns 0 or -1 (and logs file:line: why). */
int midge_config_load(struct midge *m, const char *path);

/* Adds a listener. certfile/keyfile non-NULL make it TLS. host NULL means
 * all addresses. Returns 0 or -1. */
int midge_listen(struct midge *m, const char *host, uint16_t port, const char *certfile,
		 const char *keyfile);

/* Registers a callback for one event type; several per type are called in
 * registration order. Returns 0 or -1. */
int midge_on(struct midge *m, enum midge_event_type type, midge_event_cb cb, void *user);
int midge_on_connect(struct midge *m, midge_event_cb cb, void *user);
int midge_on_disconnect(struct midge *m, midge_event_cb cb, void *user);
int midge_on_publish(struct midge *m, midge_event_cb cb, void *user);
int midge_on_subscribe(struct midge *m, midge_event_cb cb, void *user);
int midge_on_unsubscribe(struct midge *m, midge_event_cb cb, void *user);
int midge_on_ping(struct midge *m, midge_event_cb cb, void *user);
int midge_on_will(struct midge *m, midge_event_cb cb, void *user);

/* Runs the broker on the calling thread until midge_stop() or SIGINT /
 * SIGTERM. Returns 0 on a clean stop, -1 if it could not start. */
int midge_run(struct midge *m);
/* Asks a running broker to shut down gracefully. Safe from any thread and
 * from a signal handler. */
void midge_stop(struct midge *m);

/* Publishes a message as the broker. Call from the loop thread (from a
 * callback) or before midge_run(). Returns 0 or -1. */
int midge_publish(struct midge *m, const char *topic, const void *payload, size_t len, int qos,
		  bool retain);

const char *midge_version(void);

#ifdef __cplusplus
}
#endif

#endif
