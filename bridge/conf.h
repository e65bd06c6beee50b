/*
 * conf.h - a bridge's configuration: Mosquitto's bridge keys, from a
 * `connection NAME` line to the next one (docs/bridges.md).
 *
 * transport/config.c hands every bridge key here (bridge_conf_is_key());
 * the parser is bounded (at most BRIDGE_MAX_ADDRESSES addresses and
 * BRIDGE_MAX_TOPICS topic lines per bridge, BRIDGE_MAX_BRIDGES bridges)
 * and refuses, naming what to use instead, what midge cannot honour.
 * No I/O, no libuv: fuzz/fuzz_bridge_conf.c drives it.
 */
#ifndef MIDGE_BRIDGE_CONF_H
#define MIDGE_BRIDGE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BRIDGE_MAX_BRIDGES 64
#define BRIDGE_MAX_ADDRESSES 16
#define BRIDGE_MAX_TOPICS 256
#define BRIDGE_DEFAULT_PORT 1883

enum bridge_dir { BRIDGE_OUT = 1, BRIDGE_IN = 2, BRIDGE_BOTH = 3 };

enum bridge_start { BRIDGE_START_AUTOMATIC, BRIDGE_START_LAZY, BRIDGE_START_ONCE };

struct bridge_addr {
	char *host;
	uint16_t port;
};

/* One `topic` line: the filter the bridge carries, its direction and QoS,
 * and the prefixes that map local topics to remote ones. */
struct bridge_topic {
	char *pattern;      /* as written ("" when only prefixes make the filter) */
	char *local_prefix; /* NULL: none */
	char *remote_prefix;
	char *local_filter;  /* local_prefix + pattern */
	char *remote_filter; /* remote_prefix + pattern */
	uint8_t dir;         /* enum bridge_dir */
	uint8_t qos;
};

struct bridge_conf {
	char *name;
	char *where; /* "file:line" of its `connection` line (NULL when set by hand) */
	struct bridge_addr addrs[BRIDGE_MAX_ADDRESSES];
	int n_addrs;
	bool round_robin;
	struct bridge_topic *topics;
	int n_topics;
	char *remote_username, *remote_password;
	char *remote_clientid; /* NULL: hostname.NAME */
	char *local_clientid;  /* NULL: local.REMOTE_CLIENTID */
	uint8_t protocol;      /* 3, 4 or 5 */
	bool cleansession;
	uint16_t keepalive;    /* seconds */
	uint32_t restart_base, restart_cap; /* seconds; base == cap: constant */
	uint8_t start_type;    /* enum bridge_start */
	uint32_t idle_timeout; /* seconds (lazy) */
	uint32_t threshold;    /* messages queued before a lazy bridge connects */
	bool try_private;
	bool notifications;
	bool notifications_local_only;
	char *notification_topic; /* NULL: $SYS/broker/connection/REMOTE_CLIENTID/state */
	char *cafile, *capath, *certfile, *keyfile;
	bool insecure;
	bool outgoing_retain;
	uint32_t max_packet_size; /* bytes towards the remote, 0 = the protocol's bound */
};

struct bridge_confs {
	struct bridge_conf *v;
	int n;
};

/* Whether key is a bridge key (it belongs to the last `connection`). */
bool bridge_conf_is_key(const char *key);

/*
 * Applies one line. `connection NAME` opens a bridge; the other keys need
 * one open. Returns 0, or -1 with the reason (naming what to use
 * instead when midge cannot honour it) in msg.
 */
int bridge_conf_set(struct bridge_confs *bs, const char *key, const char *value, const char *where,
		    char *msg, size_t msglen);

/* What only the whole bridge shows (an address, a topic, TLS files that go
 * together). Returns 0 or -1 with "file:line: why" in err. */
int bridge_conf_check(const struct bridge_confs *bs, char *err, size_t errlen);

/* The ids and topic a bridge uses, defaults applied, written into buf
 * (returned). */
const char *bridge_conf_remote_clientid(const struct bridge_conf *b, char *buf, size_t len);
const char *bridge_conf_local_clientid(const struct bridge_conf *b, char *buf, size_t len);
const char *bridge_conf_notification_topic(const struct bridge_conf *b, char *buf, size_t len);

void bridge_confs_clear(struct bridge_confs *bs);

#endif
