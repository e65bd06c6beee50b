/*
 * zproto.h - the auth worker protocol's messages (docs/auth.md, "ZeroMQ
 * auth workers"): the JSON of a `connect` request midge sends, and the
 * parsing of what a worker says back (a `ready` greeting, or an answer).
 * Version 1; every message carries "version".
 *
 * Pure functions over bytes: no socket, no thread, no engine. The parser
 * is bounded (ZPROTO_MAX_MSG) and fuzzed (fuzz/fuzz_zauth.c).
 */
#ifndef MIDGE_AUTH_ZPROTO_H
#define MIDGE_AUTH_ZPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rules;

#define ZPROTO_VERSION 1
/* The largest message either side accepts (ZMQ_MAXMSGSIZE too). */
#define ZPROTO_MAX_MSG (1024u * 1024u)
#define ZPROTO_MAX_USERNAME 65535u

/* A byte string that may be absent (p NULL). */
struct zproto_bytes {
	const void *p;
	size_t len;
};

/* What a `connect` request says about a CONNECT; views, copied into the
 * JSON. */
struct zproto_connect {
	struct zproto_bytes client_id, username, password; /* password goes as base64 */
	const char *peer;      /* text address, may be NULL */
	uint16_t peer_port;
	uint16_t listener;     /* 1, 2, ... ; 0 the embedding API's */
	uint8_t protocol;      /* 3, 4, 5 */
	bool tls;
	const char *tls_subject;     /* the certificate's subject DN, NULL without one */
	const char *tls_fingerprint; /* its SHA-256, hex, NULL without one */
};

/*
 * The JSON text of a connect request with id `id`: *out malloc'd (free
 * it; it holds the password: zproto_wipe() first), *outlen its length.
 * Returns 0 or -1 (out of memory, or over ZPROTO_MAX_MSG).
 */
int zproto_connect_request(const struct zproto_connect *in, uint64_t id, char **out,
			   size_t *outlen);

/* The step of an enhanced authentication exchange an `auth` request is
 * about (its "step": connect, continue, reauthenticate). */
enum zproto_step {
	ZPROTO_STEP_CONNECT = 0,
	ZPROTO_STEP_CONTINUE = 1,
	ZPROTO_STEP_REAUTH = 2,
};

/* The largest Authentication Data (a binary property: 65535 bytes). */
#define ZPROTO_MAX_DATA 65535u

/* What an `auth` request adds to the client's fields (views). */
struct zproto_auth {
	enum zproto_step step;
	struct zproto_bytes method; /* the Authentication Method (UTF-8) */
	struct zproto_bytes data;   /* the Authentication Data (base64), p NULL: none */
};

/*
 * The JSON text of an `auth` request with id `id` (MQTT 5 enhanced
 * authentication): the client's fields of in (its password is not
 * sent), step, method and data. *out malloc'd (zproto_wipe() it).
 * Returns 0 or -1 (out of memory, or over ZPROTO_MAX_MSG).
 */
int zproto_auth_request(const struct zproto_connect *in, const struct zproto_auth *a,
			uint64_t id, char **out, size_t *outlen);

/* What an `acl` request asks (views): may the client publish on topic,
 * or subscribe to the filter topic. */
enum zproto_action {
	ZPROTO_ACL_PUBLISH = 0,
	ZPROTO_ACL_SUBSCRIBE = 1,
	ZPROTO_ACL_RECEIVE = 2, /* a delivery to the client (its connect answer's "receive": "ask") */
};

/*
 * The JSON text of an `acl` request with id `id`, for a client whose
 * connect answer said "acl": "ask": the client's fields of in (its
 * password is not sent), action, topic (a topic name or filter, UTF-8,
 * under the listener's mount_point), qos (0..2: the PUBLISH's, or the
 * QoS a SUBSCRIBE asked for) and retain (the PUBLISH's flag; false for
 * a SUBSCRIBE; a delivery's QoS and the retain flag the client gets).
 * *out malloc'd (free it). Returns 0 or -1 (out of
 * memory, a QoS over 2, or over ZPROTO_MAX_MSG).
 */
int zproto_acl_request(const struct zproto_connect *in, enum zproto_action action,
		       const struct zproto_bytes *topic, uint8_t qos, bool retain, uint64_t id,
		       char **out, size_t *outlen);

/* Zeroes and frees a request's text. */
void zproto_wipe(char *text, size_t len);

enum zproto_kind {
	ZPROTO_READY = 1,  /* a worker says it takes requests */
	ZPROTO_ANSWER = 2, /* the answer to request `id` */
};

/* A worker's answer. */
struct zproto_answer {
	uint64_t id;
	bool allow;
	uint8_t reason_code;     /* deny: a CONNACK refusal code (default 0x87) */
	char *username;          /* allow: the user name to use from now on, or NULL */
	size_t username_len;
	bool has_expiry_max;     /* allow: cap the session expiry interval */
	uint32_t expiry_max;
	struct rules *rules;    /* allow: this client's ACL rules, or NULL (acl_file decides) */
	bool acl_ask;            /* allow: "acl": "ask": `acl` requests decide its messages */
	bool receive_ask;        /* allow: and "receive": "ask": its deliveries too */
	bool no_cache;           /* "cache": false: do not remember this decision */
	bool any_qos_retain;     /* an `acl` answer's "any_qos_retain": true: it holds for
				  * every QoS and retain flag of its topic */
	bool cont;               /* "result": "continue" (an `auth` request's next step) */
	bool defer;              /* "result": "defer": the chain's next source decides */
	bool has_data;           /* "data": the Authentication Data for the client */
	uint8_t *data;           /* ... decoded, data_len bytes (malloc'd) */
	size_t data_len;
};

/*
 * Parses one message from a worker, buf[0..len) (need not be
 * NUL-terminated). Returns ZPROTO_READY, ZPROTO_ANSWER (out filled:
 * free with zproto_answer_clear), or -1 with why in err (not JSON, over
 * the bound, wrong version, a field of the wrong type or out of range).
 */
int zproto_parse(const void *buf, size_t len, struct zproto_answer *out, char *err, size_t errlen);

/* Frees what an answer holds; the struct may be reused. */
void zproto_answer_clear(struct zproto_answer *a);

#endif
