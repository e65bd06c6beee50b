/*
 * codec.h - the MQTT 3.1 / 3.1.1 / 5.0 wire format.
 *
 * Two stages, as docs/ARCHITECTURE.md describes:
 *   1. codec_frame_scan() reads the fixed header (type, flags, remaining
 *      length) from however many bytes have arrived, and refuses a packet
 *      larger than the caller's limit before its body is buffered.
 *   2. codec_decode() decodes one complete body into a struct codec_packet
 *      whose fields are views into the caller's buffer: nothing is copied,
 *      nothing is allocated. The views live as long as that buffer.
 *
 * The encoder computes exact sizes and writes into caller buffers.
 *
 * Errors are returned as the negated MQTT 5 reason code that the engine
 * sends (-MQTT_RC_MALFORMED, -MQTT_RC_PROTOCOL_ERROR, ...), so one value
 * serves the CONNACK/DISCONNECT answer and the log line.
 *
 * This header includes nothing from other folders.
 */
#ifndef MIDGE_CODEC_H
#define MIDGE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol levels as carried in CONNECT. 0 means "not connected yet". */
enum codec_version {
	CODEC_V31 = 3,  /* MQTT 3.1, protocol name "MQIsdp" */
	CODEC_V311 = 4, /* MQTT 3.1.1, protocol name "MQTT" */
	CODEC_V5 = 5,   /* MQTT 5.0, protocol name "MQTT" */
};

enum codec_type {
	CODEC_CONNECT = 1,
	CODEC_CONNACK = 2,
	CODEC_PUBLISH = 3,
	CODEC_PUBACK = 4,
	CODEC_PUBREC = 5,
	CODEC_PUBREL = 6,
	CODEC_PUBCOMP = 7,
	CODEC_SUBSCRIBE = 8,
	CODEC_SUBACK = 9,
	CODEC_UNSUBSCRIBE = 10,
	CODEC_UNSUBACK = 11,
	CODEC_PINGREQ = 12,
	CODEC_PINGRESP = 13,
	CODEC_DISCONNECT = 14,
	CODEC_AUTH = 15, /* MQTT 5 only */
};

/* MQTT 5 reason codes (specification 2.4). */
enum mqtt_rc {
	MQTT_RC_SUCCESS = 0x00, /* also NORMAL_DISCONNECTION, GRANTED_QOS0 */
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
	MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes (specification 3.2.2.3). */
enum mqtt_connack_v3 {
	MQTT_CONNACK_V3_ACCEPTED = 0,
	MQTT_CONNACK_V3_BAD_PROTOCOL = 1,
	MQTT_CONNACK_V3_ID_REJECTED = 2,
	MQTT_CONNACK_V3_SERVER_UNAVAILABLE = 3,
	MQTT_CONNACK_V3_BAD_CREDENTIALS = 4,
	MQTT_CONNACK_V3_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers (specification 2.2.2.2). */
enum codec_prop_id {
	CODEC_PROP_PAYLOAD_FORMAT = 0x01,
	CODEC_PROP_MESSAGE_EXPIRY = 0x02,
	CODEC_PROP_CONTENT_TYPE = 0x03,
	CODEC_PROP_RESPONSE_TOPIC = 0x08,
	CODEC_PROP_CORRELATION_DATA = 0x09,
	CODEC_PROP_SUBSCRIPTION_ID = 0x0B,
	CODEC_PROP_SESSION_EXPIRY = 0x11,
	CODEC_PROP_ASSIGNED_CLIENT_ID = 0x12,
	CODEC_PROP_SERVER_KEEP_ALIVE = 0x13,
	CODEC_PROP_AUTH_METHOD = 0x15,
	CODEC_PROP_AUTH_DATA = 0x16,
	CODEC_PROP_REQUEST_PROBLEM_INFO = 0x17,
	CODEC_PROP_WILL_DELAY = 0x18,
	CODEC_PROP_REQUEST_RESPONSE_INFO = 0x19,
	CODEC_PROP_RESPONSE_INFO = 0x1A,
	CODEC_PROP_SERVER_REFERENCE = 0x1C,
	CODEC_PROP_REASON_STRING = 0x1F,
	CODEC_PROP_RECEIVE_MAX = 0x21,
	CODEC_PROP_TOPIC_ALIAS_MAX = 0x22,
	CODEC_PROP_TOPIC_ALIAS = 0x23,
	CODEC_PROP_MAX_QOS = 0x24,
	CODEC_PROP_RETAIN_AVAILABLE = 0x25,
	CODEC_PROP_USER_PROPERTY = 0x26,
	CODEC_PROP_MAX_PACKET_SIZE = 0x27,
	CODEC_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	CODEC_PROP_SUB_ID_AVAILABLE = 0x29,
	CODEC_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

#define CODEC_PROP_BIT(id) (UINT64_C(1) << (id))
#define CODEC_HAS_PROP(props, id) (((props)->present & CODEC_PROP_BIT(id)) != 0)

/* The largest remaining length four variable-byte digits can express. */
#define CODEC_MAX_REMAINING 268435455u
/* Fixed header: one byte of type and flags, up to four of length. */
#define CODEC_MAX_FIXED_HEADER 5

/* A view of bytes (a UTF-8 string, binary data, a payload). Not owned. */
struct codec_buf {
	const uint8_t *p;
	uint32_t len;
};

/*
 * MQTT 5 properties of one packet (or of a CONNECT's will).
 *
 * Decoding sets a bit in `present` for every property found, fills the
 * scalar or view field for it, and sets `raw` to the whole property block
 * (without its length prefix). Properties that may repeat (user properties,
 * subscription identifiers) are counted here and read back in order with
 * codec_props_next_user() / codec_props_next_sub_id() from `raw`.
 *
 * Encoding writes every property whose bit is set, from the fields below;
 * user properties are copied, in order, from the USER_PROPERTY entries of
 * `raw` (so a decoded block re-encodes unchanged); subscription identifiers
 * come from `sub_ids` when it is not NULL, else from `raw`.
 */
struct codec_props {
	uint64_t present;
	struct codec_buf raw;
	uint32_t user_count;
	uint32_t sub_id_count;
	const uint32_t *sub_ids; /* encode only: sub_id_count values */
	uint32_t sub_id;         /* decode: the first subscription identifier */

	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;
	uint16_t server_keep_alive;
	uint16_t receive_max;
	uint16_t topic_alias_max;
	uint16_t topic_alias;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;

	struct codec_buf content_type;
	struct codec_buf response_topic;
	struct codec_buf correlation_data;
	struct codec_buf assigned_client_id;
	struct codec_buf auth_method;
	struct codec_buf auth_data;
	struct codec_buf response_info;
	struct codec_buf server_reference;
	struct codec_buf reason_string;
};

struct codec_connect {
	struct codec_buf protocol_name;
	uint8_t level;       /* 3, 4 or 5 */
	bool bridge;         /* the level had Mosquitto's bridge bit (0x83, 0x84) */
	uint8_t flags;       /* the raw connect flags byte */
	bool clean_start;    /* clean session in 3.1 / 3.1.1 */
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keep_alive;
	struct codec_props props;      /* v5 */
	struct codec_buf client_id;
	struct codec_props will_props; /* v5 */
	struct codec_buf will_topic;
	struct codec_buf will_payload;
	struct codec_buf username;
	struct codec_buf password;
};

struct codec_connack {
	bool session_present;
	uint8_t rc; /* v5 reason code, or a v3 return code (enum mqtt_connack_v3) */
	struct codec_props props;
};

struct codec_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	struct codec_buf topic; /* may be empty in v5 when a topic alias is set */
	uint16_t packet_id;     /* QoS 1 and 2 only */
	struct codec_props props;
	struct codec_buf payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct codec_ack {
	uint16_t packet_id;
	uint8_t rc; /* v5; 0 when absent */
	struct codec_props props;
};

/* One entry of a SUBSCRIBE payload. */
struct codec_sub_entry {
	struct codec_buf filter;
	uint8_t options; /* the raw options byte */
	uint8_t qos;
	bool no_local;            /* v5 */
	bool retain_as_published; /* v5 */
	uint8_t retain_handling;  /* v5: 0, 1 or 2 */
};

/*
 * SUBSCRIBE and UNSUBSCRIBE. Decoding validates every entry, counts them and
 * sets `list` to the raw payload; read entries back with
 * codec_subscribe_next() / codec_unsubscribe_next(). Encoding writes
 * `entries` / `filters` when not NULL (count items), else copies `list`.
 */
struct codec_subscribe {
	uint16_t packet_id;
	struct codec_props props;
	struct codec_buf list;
	uint32_t count;
	const struct codec_sub_entry *entries; /* encode only */
};

struct codec_unsubscribe {
	uint16_t packet_id;
	struct codec_props props;
	struct codec_buf list;
	uint32_t count;
	const struct codec_buf *filters; /* encode only */
};

/* SUBACK and UNSUBACK: one reason code per requested filter. In 3.1.1 an
 * UNSUBACK carries no codes (count is 0). */
struct codec_suback {
	uint16_t packet_id;
	struct codec_props props;
	const uint8_t *codes;
	uint32_t count;
};

/* DISCONNECT and AUTH. */
struct codec_disconnect {
	uint8_t rc;
	struct codec_props props;
};

struct codec_packet {
	uint8_t type;    /* enum codec_type */
	uint8_t flags;   /* low nibble of the first byte */
	uint8_t version; /* protocol level the packet was decoded / is encoded for */
	union {
		struct codec_connect connect;
		struct codec_connack connack;
		struct codec_publish publish;
		struct codec_ack ack;
		struct codec_subscribe subscribe;
		struct codec_unsubscribe unsubscribe;
		struct codec_suback suback;
		struct codec_disconnect disconnect; /* also AUTH */
	} u;
};

/* Fixed header, as scanned. */
struct codec_frame {
	uint8_t first;      /* the whole first byte */
	uint8_t type;       /* first >> 4 */
	uint8_t flags;      /* first & 0x0F */
	uint8_t header_len; /* 2 to 5 */
	uint32_t remaining; /* body length */
};

/* Returned by codec_frame_scan() while the fixed header is incomplete. */
#define CODEC_PARTIAL 1

/*
 * Scans the fixed header at p[0..n).
 * Returns 0 and fills *fr when the header is complete (the body may not have
 * arrived yet: the caller waits for header_len + remaining bytes);
 * CODEC_PARTIAL when more bytes are needed; -MQTT_RC_MALFORMED for a reserved
 * type, flags the specification forbids for the type (including PUBLISH QoS
 * 3 and DUP on QoS 0), or a fifth length byte; -MQTT_RC_PACKET_TOO_LARGE
 * when header_len + remaining exceeds max_packet (0 means no limit beyond
 * the protocol's).
 * Stateless: feeding the header one byte at a time gives the same result.
 */
int codec_frame_scan(const uint8_t *p, size_t n, uint32_t max_packet, struct codec_frame *fr);

/*
 * One complete packet found by codec_frames(): fr is its fixed header and
 * body[0..fr->remaining) its body, a view into the caller's buffer valid
 * for the call. Return 0 to go on, or a positive value to stop the loop.
 */
typedef int (*codec_packet_cb)(void *ctx, const struct codec_frame *fr, const uint8_t *body);

/* What codec_frames() did with the input. */
struct codec_feed {
	size_t used; /* bytes of the packets handed out: the caller drops them */
	size_t need; /* > 0: the whole size of the incomplete packet that follows,
		      * so the caller can make room for it; 0 while its fixed
		      * header is incomplete or nothing follows */
};

/*
 * The one framing loop (picohttpparser's contract: bytes in, packets
 * handled, bytes consumed, or an error). Hands every complete packet in
 * p[0..n) to cb in order, scanning each fixed header against *max_packet
 * read afresh before each packet (the callback may change it, as the
 * engine does when CONNECT is accepted; NULL means no limit).
 * Returns 0 when the input ran out (out->used bytes were handled, the rest
 * is an incomplete packet), the callback's positive value when it stopped
 * the loop (its packet counts as used), or the negated reason code of
 * codec_frame_scan() (-MQTT_RC_MALFORMED, -MQTT_RC_PACKET_TOO_LARGE) for
 * the bytes at out->used. Feeding the stream in any split gives the same
 * packets.
 */
int codec_frames(const uint8_t *p, size_t n, const uint32_t *max_packet, codec_packet_cb cb,
		 void *ctx, struct codec_feed *out);

/*
 * Decodes the body of one packet: `first` is its first byte, body[0..len)
 * exactly its remaining length. `version` is the connection's protocol
 * level (0 before CONNECT: non-CONNECT packets decode as 3.1.1). A CONNECT
 * decodes with the level it carries.
 * Returns 0, or a negated reason code: -MQTT_RC_MALFORMED (0x81),
 * -MQTT_RC_PROTOCOL_ERROR (0x82), -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION
 * (0x84, unknown protocol name or level), -MQTT_RC_TOPIC_NAME_INVALID,
 * -MQTT_RC_TOPIC_FILTER_INVALID, -MQTT_RC_PAYLOAD_FORMAT_INVALID.
 * On failure out->type and out->version are still set as far as they were
 * decoded, so the engine can answer a bad CONNECT in the client's version.
 * All views in *out point into body. Allocates nothing.
 */
int codec_decode(uint8_t first, const uint8_t *body, uint32_t len, uint8_t version,
		 struct codec_packet *out);

/* Decodes a bare property block (no length prefix) as allowed in a packet
 * of `type` (CODEC_CONNECT + will = use CODEC_PUBLISH rules for will
 * properties via codec_props_decode_will()). Returns 0 or a negated
 * reason code. */
int codec_props_decode(const uint8_t *p, uint32_t len, uint8_t type, struct codec_props *out);
int codec_props_decode_will(const uint8_t *p, uint32_t len, struct codec_props *out);

/* Iterate repeated properties of a decoded block. *pos starts at 0.
 * Return 1 with the next entry, 0 at the end. */
int codec_props_next_user(const struct codec_props *props, uint32_t *pos, struct codec_buf *key,
			  struct codec_buf *val);
int codec_props_next_sub_id(const struct codec_props *props, uint32_t *pos, uint32_t *id);

/* Iterate the entries of a decoded SUBSCRIBE / UNSUBSCRIBE. */
int codec_subscribe_next(const struct codec_subscribe *s, uint32_t *pos, struct codec_sub_entry *e);
int codec_unsubscribe_next(const struct codec_unsubscribe *u, uint32_t *pos, struct codec_buf *filter);

/* Well-formed UTF-8 as MQTT requires: no surrogates, no overlongs, no
 * U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]. */
bool codec_utf8_valid(const uint8_t *p, size_t n);
/* A topic name: valid UTF-8, 1..65535 bytes, no '+' or '#' [MQTT-3.3.2-2]. */
bool codec_topic_name_valid(const uint8_t *p, size_t n);
/* A topic filter: valid UTF-8, not empty, '#' last and alone in its level,
 * '+' alone in its level [MQTT-4.7.1-1] [MQTT-4.7.1-2]; a $share/ filter
 * needs a share name without wildcards and a filter after it. */
bool codec_topic_filter_valid(const uint8_t *p, size_t n);

/*
 * Encoded size of the whole packet (fixed header included), for
 * pkt->version. Returns 0 if the packet cannot be encoded (a field over
 * 65535 bytes, a body over CODEC_MAX_REMAINING).
 */
size_t codec_encode_size(const struct codec_packet *pkt);

/* Writes the packet into buf[0..cap). Returns the bytes written
 * (== codec_encode_size()), or 0 when it does not fit or cannot be encoded. */
size_t codec_encode(const struct codec_packet *pkt, uint8_t *buf, size_t cap);

/*
 * Writes a PUBLISH up to, not including, its payload: the fixed header
 * (whose remaining length counts the payload), topic, packet id and
 * properties. The payload can then be sent from a shared buffer, so a
 * fan-out shares one copy. Returns bytes written or 0.
 */
size_t codec_encode_publish_head(const struct codec_packet *pkt, uint8_t *buf, size_t cap);

/* Size of a variable byte integer and of an encoded property block
 * (including its length prefix) for a packet type. */
size_t codec_varint_size(uint32_t v);
size_t codec_props_size(const struct codec_props *props);

/* Short English names, for logs and events. */
const char *codec_type_name(uint8_t type);
const char *codec_rc_name(uint8_t rc);

#endif
