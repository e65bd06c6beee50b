/*
 * conf.c - Mosquitto's bridge keys (bridge/conf.h has the contract).
 */
#include "bridge/conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"

static int bconf_fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bconf_fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Mosquitto bridge keys midge refuses, and why (fail closed: each would
 * change what the bridge carries or whom it trusts). */
static const struct {
	const char *key;
	const char *why;
} bconf_refused[] = {
	{"addresses", "is an old spelling midge does not read: use address HOST[:PORT] ..."},
	{"local_username", "is not needed: a midge bridge publishes locally as the broker itself "
			   "(no local authentication); remove it"},
	{"local_password", "is not needed: a midge bridge publishes locally as the broker itself; "
			   "remove it"},
	{"local_cleansession", "is not supported: the local side of a midge bridge is its queue, "
			       "kept (and persisted with persistence true) while the remote is down"},
	{"bridge_identity", "(TLS-PSK towards the remote) is not supported: use bridge_certfile and "
			    "bridge_keyfile"},
	{"bridge_psk", "(TLS-PSK towards the remote) is not supported: use bridge_certfile and "
		       "bridge_keyfile"},
	{"bridge_tls_version", "is not supported: midge's bridges negotiate TLS 1.2 or 1.3 (GnuTLS's "
			       "defaults)"},
	{"bridge_require_ocsp", "is not supported: midge cannot check OCSP for a bridge; remove it"},
	{"bridge_alpn", "is not supported by midge's bridges; remove it"},
	{"bridge_bind_address", "is not supported by midge's bridges; remove it"},
	{"bridge_attempt_unsubscribe", "is not supported: midge's bridges never unsubscribe; remove "
				       "it"},
	{"bridge_reload_type", "is not supported: bridges are read at start-up only"},
	{"bridge_tcp_keepalive", "is not supported by midge's bridges; remove it"},
	{"bridge_tcp_user_timeout", "is not supported by midge's bridges; remove it"},
	{"bridge_receive_maximum", "is not supported: midge's window towards the remote is "
				   "max_inflight_messages (and the remote's receive maximum)"},
	{"bridge_session_expiry_interval", "is not supported: use cleansession"},
	{"bridge_ciphers", "is not supported: midge's bridges use GnuTLS's default priorities"},
	{NULL, NULL},
};

static const char *const bconf_keys[] = {
	"connection", "address", "round_robin", "topic", "remote_username", "remote_password",
	"remote_clientid", "local_clientid", "bridge_protocol_version", "cleansession",
	"keepalive_interval", "restart_timeout", "start_type", "idle_timeout", "threshold",
	"try_private", "notifications", "notifications_local_only", "notification_topic",
	"bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_keyfile", "bridge_insecure",
	"bridge_outgoing_retain", "bridge_max_packet_size", NULL,
};

bool bridge_conf_is_key(const char *key)
{
	for (int i = 0; bconf_keys[i]; i++)
		if (strcmp(key, bconf_keys[i]) == 0)
			return true;
	for (int i = 0; bconf_refused[i].key; i++)
		if (strcmp(key, bconf_refused[i].key) == 0)
			return true;
	return strncmp(key, "bridge_", 7) == 0;
}

static int bconf_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

static int bconf_bool(const char *v, bool *out)
{
	if (strcmp(v, "true") == 0)
		*out = true;
	else if (strcmp(v, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int bconf_u32(const char *v, uint32_t max, uint32_t *out)
{
	char *end;
	if (!*v || *v == '-')
		return -1;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || n > max)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

/* Splits v into at most max words (separated by spaces or tabs) in buf;
 * `""` is an empty word (Mosquitto's way of writing an empty prefix).
 * Returns the count, or -1 when there are more words or v is too long. */
static int bconf_words(const char *v, char *buf, size_t cap, char **w, int max)
{
	size_t n = strlen(v);
	int k = 0;
	if (n >= cap)
		return -1;
	memcpy(buf, v, n + 1);
	char *p = buf;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (!*p)
			return k;
		if (k == max)
			return -1;
		w[k++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
		if (strcmp(w[k - 1], "\"\"") == 0)
			w[k - 1][0] = '\0';
	}
}

/* address HOST[:PORT] [HOST[:PORT] ...] (an IPv6 literal in brackets). */
static int bconf_address(struct bridge_conf *b, const char *v, char *msg, size_t msglen)
{
	char buf[2048], *w[BRIDGE_MAX_ADDRESSES];
	int n = bconf_words(v, buf, sizeof buf, w, BRIDGE_MAX_ADDRESSES);
	if (n <= 0)
		return bconf_fail(msg, msglen, "address needs HOST[:PORT] (at most %d of them)",
				  BRIDGE_MAX_ADDRESSES);
	for (int i = 0; i < b->n_addrs; i++)
		free(b->addrs[i].host);
	b->n_addrs = 0;
	for (int i = 0; i < n; i++) {
		char *h = w[i], *colon;
		uint32_t port = BRIDGE_DEFAULT_PORT;
		if (*h == '[') { /* [v6]:port */
			char *close = strchr(h, ']');
			if (!close || (close[1] && close[1] != ':'))
				return bconf_fail(msg, msglen, "address '%s' is not HOST[:PORT]", w[i]);
			*close = '\0';
			colon = close[1] == ':' ? close + 1 : NULL;
			h++;
		} else {
			colon = strrchr(h, ':');
			if (colon && strchr(h, ':') != colon)
				colon = NULL; /* a bare IPv6 literal */
		}
		if (colon) {
			*colon = '\0';
			if (bconf_u32(colon + 1, 65535, &port) < 0 || port == 0)
				return bconf_fail(msg, msglen, "address '%s' has a bad port", w[i]);
		}
		if (!*h || strlen(h) > 255)
			return bconf_fail(msg, msglen, "address '%s' has no host", w[i]);
		if (!(b->addrs[b->n_addrs].host = strdup(h)))
			return bconf_fail(msg, msglen, "out of memory");
		b->addrs[b->n_addrs++].port = (uint16_t)port;
	}
	return 0;
}

static char *bconf_join(const char *a, const char *b)
{
	size_t la = a ? strlen(a) : 0, lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s) {
		if (la)
			memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static bool bconf_prefix_ok(const char *p)
{
	return !strchr(p, '+') && !strchr(p, '#') &&
	       (!*p || codec_utf8_valid((const uint8_t *)p, strlen(p)));
}

/* topic PATTERN [[[out|in|both] QOS] LOCAL_PREFIX REMOTE_PREFIX] */
static int bconf_topic(struct bridge_conf *b, const char *v, char *msg, size_t msglen)
{
	char buf[4096], *w[6];
	int n = bconf_words(v, buf, sizeof buf, w, 5);
	if (n < 1 || n == 4)
		return bconf_fail(msg, msglen, "topic needs PATTERN [[[out|in|both] QOS] LOCAL_PREFIX "
					       "REMOTE_PREFIX], not '%s'",
				  v);
	if (b->n_topics == BRIDGE_MAX_TOPICS)
		return bconf_fail(msg, msglen, "too many topic lines (at most %d per bridge)",
				  BRIDGE_MAX_TOPICS);
	struct bridge_topic t = {0};
	t.dir = BRIDGE_OUT;
	if (n >= 2) {
		if (strcmp(w[1], "out") == 0)
			t.dir = BRIDGE_OUT;
		else if (strcmp(w[1], "in") == 0)
			t.dir = BRIDGE_IN;
		else if (strcmp(w[1], "both") == 0)
			t.dir = BRIDGE_BOTH;
		else
			return bconf_fail(msg, msglen, "topic direction must be out, in or both, not '%s'",
					  w[1]);
	}
	if (n >= 3) {
		uint32_t q;
		if (bconf_u32(w[2], 2, &q) < 0)
			return bconf_fail(msg, msglen, "topic QoS must be 0, 1 or 2, not '%s'", w[2]);
		t.qos = (uint8_t)q;
	}
	const char *lp = n == 5 ? w[3] : "", *rp = n == 5 ? w[4] : "";
	if (!bconf_prefix_ok(lp) || !bconf_prefix_ok(rp))
		return bconf_fail(msg, msglen, "topic prefixes may not hold wildcards ('%s' '%s')", lp,
				  rp);
	if (!*w[0] && (!*lp || !*rp))
		return bconf_fail(msg, msglen, "topic \"\" needs both prefixes (they name the topic)");
	t.pattern = strdup(w[0]);
	t.local_prefix = *lp ? strdup(lp) : NULL;
	t.remote_prefix = *rp ? strdup(rp) : NULL;
	t.local_filter = bconf_join(lp, w[0]);
	t.remote_filter = bconf_join(rp, w[0]);
	const char *bad = NULL;
	if (!t.pattern || (*lp && !t.local_prefix) || (*rp && !t.remote_prefix) || !t.local_filter ||
	    !t.remote_filter)
		bad = "out of memory";
	else if (strlen(t.local_filter) > UINT16_MAX || strlen(t.remote_filter) > UINT16_MAX ||
		 !codec_topic_filter_valid((const uint8_t *)t.local_filter, strlen(t.local_filter)) ||
		 !codec_topic_filter_valid((const uint8_t *)t.remote_filter, strlen(t.remote_filter)) ||
		 strncmp(t.local_filter, "$share/", 7) == 0)
		bad = "is not a valid topic filter";
	if (bad) {
		snprintf(msg, msglen, "topic '%s': %s", w[0], bad);
		free(t.pattern);
		free(t.local_prefix);
		free(t.remote_prefix);
		free(t.local_filter);
		free(t.remote_filter);
		return -1;
	}
	struct bridge_topic *nt = realloc(b->topics, (size_t)(b->n_topics + 1) * sizeof *nt);
	if (!nt) {
		free(t.pattern);
		free(t.local_prefix);
		free(t.remote_prefix);
		free(t.local_filter);
		free(t.remote_filter);
		return bconf_fail(msg, msglen, "out of memory");
	}
	b->topics = nt;
	b->topics[b->n_topics++] = t;
	return 0;
}

/* connection NAME: a new bridge with Mosquitto's defaults. */
static int bconf_connection(struct bridge_confs *bs, const char *v, const char *where, char *msg,
			    size_t msglen)
{
	if (!*v || strlen(v) > 256 || strpbrk(v, " \t/+#"))
		return bconf_fail(msg, msglen, "connection needs a name (no spaces, '/', '+' or '#')");
	for (int i = 0; i < bs->n; i++)
		if (strcmp(bs->v[i].name, v) == 0)
			return bconf_fail(msg, msglen, "connection %s is already defined", v);
	if (bs->n == BRIDGE_MAX_BRIDGES)
		return bconf_fail(msg, msglen, "too many bridges (at most %d)", BRIDGE_MAX_BRIDGES);
	struct bridge_conf *nv = realloc(bs->v, (size_t)(bs->n + 1) * sizeof *nv);
	if (!nv)
		return bconf_fail(msg, msglen, "out of memory");
	bs->v = nv;
	struct bridge_conf *b = &bs->v[bs->n];
	memset(b, 0, sizeof *b);
	b->name = strdup(v);
	b->where = where ? strdup(where) : NULL;
	if (!b->name || (where && !b->where)) {
		free(b->name);
		free(b->where);
		return bconf_fail(msg, msglen, "out of memory");
	}
	b->protocol = 4;
	b->keepalive = 60;
	b->restart_base = 5;
	b->restart_cap = 30;
	b->threshold = 10;
	b->idle_timeout = 60;
	b->try_private = true;
	b->notifications = true;
	b->outgoing_retain = true;
	bs->n++;
	return 0;
}

int bridge_conf_set(struct bridge_confs *bs, const char *key, const char *value, const char *where,
		    char *msg, size_t msglen)
{
	const char *v = value ? value : "";
	uint32_t n;
	msg[0] = '\0';
	for (int i = 0; bconf_refused[i].key; i++)
		if (strcmp(key, bconf_refused[i].key) == 0)
			return bconf_fail(msg, msglen, "%s %s", key, bconf_refused[i].why);
	if (strcmp(key, "connection") == 0)
		return bconf_connection(bs, v, where, msg, msglen);
	if (!bs->n)
		return bconf_fail(msg, msglen, "%s belongs to a bridge: put it after a connection line",
				  key);
	struct bridge_conf *b = &bs->v[bs->n - 1];
	if (strcmp(key, "address") == 0)
		return bconf_address(b, v, msg, msglen);
	if (strcmp(key, "topic") == 0)
		return bconf_topic(b, v, msg, msglen);
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
		{"remote_username", offsetof(struct bridge_conf, remote_username)},
		{"remote_password", offsetof(struct bridge_conf, remote_password)},
		{"remote_clientid", offsetof(struct bridge_conf, remote_clientid)},
		{"local_clientid", offsetof(struct bridge_conf, local_clientid)},
		{"notification_topic", offsetof(struct bridge_conf, notification_topic)},
		{"bridge_cafile", offsetof(struct bridge_conf, cafile)},
		{"bridge_capath", offsetof(struct bridge_conf, capath)},
		{"bridge_certfile", offsetof(struct bridge_conf, certfile)},
		{"bridge_keyfile", offsetof(struct bridge_conf, keyfile)},
	};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		if (strcmp(key, strs[i].key) != 0)
			continue;
		if (!*v || strlen(v) > 4096 || !codec_utf8_valid((const uint8_t *)v, strlen(v)))
			return bconf_fail(msg, msglen, "%s needs a value", key);
		if (strcmp(key, "notification_topic") == 0 &&
		    !codec_topic_name_valid((const uint8_t *)v, strlen(v)))
			return bconf_fail(msg, msglen, "notification_topic '%s' is not a topic name", v);
		if (strcmp(key, "remote_clientid") == 0 && strlen(v) > 65535)
			return bconf_fail(msg, msglen, "remote_clientid is too long");
		return bconf_str((char **)((char *)b + strs[i].off), v) < 0
			       ? bconf_fail(msg, msglen, "out of memory")
			       : 0;
	}
	static const struct {
		const char *key;
		size_t off;
	} bools[] = {
		{"round_robin", offsetof(struct bridge_conf, round_robin)},
		{"cleansession", offsetof(struct bridge_conf, cleansession)},
		{"try_private", offsetof(struct bridge_conf, try_private)},
		{"notifications", offsetof(struct bridge_conf, notifications)},
		{"notifications_local_only", offsetof(struct bridge_conf, notifications_local_only)},
		{"bridge_insecure", offsetof(struct bridge_conf, insecure)},
		{"bridge_outgoing_retain", offsetof(struct bridge_conf, outgoing_retain)},
	};
	for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
		if (strcmp(key, bools[i].key) == 0)
			return bconf_bool(v, (bool *)((char *)b + bools[i].off)) < 0
				       ? bconf_fail(msg, msglen, "%s needs true or false, not '%s'", key, v)
				       : 0;
	if (strcmp(key, "bridge_protocol_version") == 0) {
		if (strcmp(v, "mqttv31") == 0)
			b->protocol = 3;
		else if (strcmp(v, "mqttv311") == 0)
			b->protocol = 4;
		else if (strcmp(v, "mqttv50") == 0)
			b->protocol = 5;
		else
			return bconf_fail(msg, msglen,
					  "bridge_protocol_version needs mqttv31, mqttv311 or mqttv50, "
					  "not '%s'",
					  v);
		return 0;
	}
	if (strcmp(key, "keepalive_interval") == 0) {
		if (bconf_u32(v, 65535, &n) < 0 || n < 5)
			return bconf_fail(msg, msglen, "keepalive_interval needs 5..65535 seconds, not '%s'",
					  v);
		b->keepalive = (uint16_t)n;
		return 0;
	}
	if (strcmp(key, "restart_timeout") == 0) {
		char buf[64], *w[2];
		uint32_t base, cap;
		int k = bconf_words(v, buf, sizeof buf, w, 2);
		if (k < 1 || bconf_u32(w[0], 86400, &base) < 0 || base == 0 ||
		    (k == 2 && (bconf_u32(w[1], 86400, &cap) < 0 || cap < base)))
			return bconf_fail(msg, msglen, "restart_timeout needs SECONDS or BASE CAP "
						       "(1..86400, CAP >= BASE), not '%s'",
					  v);
		b->restart_base = base;
		b->restart_cap = k == 2 ? cap : base;
		return 0;
	}
	if (strcmp(key, "start_type") == 0) {
		if (strcmp(v, "automatic") == 0)
			b->start_type = BRIDGE_START_AUTOMATIC;
		else if (strcmp(v, "lazy") == 0)
			b->start_type = BRIDGE_START_LAZY;
		else if (strcmp(v, "once") == 0)
			b->start_type = BRIDGE_START_ONCE;
		else
			return bconf_fail(msg, msglen, "start_type needs automatic, lazy or once, not '%s'",
					  v);
		return 0;
	}
	if (strcmp(key, "idle_timeout") == 0 || strcmp(key, "threshold") == 0) {
		if (bconf_u32(v, 86400 * 365, &n) < 0 || n == 0)
			return bconf_fail(msg, msglen, "%s needs a positive number, not '%s'", key, v);
		*(key[0] == 'i' ? &b->idle_timeout : &b->threshold) = n;
		return 0;
	}
	if (strcmp(key, "bridge_max_packet_size") == 0) {
		if (bconf_u32(v, CODEC_MAX_REMAINING + CODEC_MAX_FIXED_HEADER, &n) < 0)
			return bconf_fail(msg, msglen, "bridge_max_packet_size needs bytes (0: unlimited), "
						       "not '%s'",
					  v);
		b->max_packet_size = n;
		return 0;
	}
	return bconf_fail(msg, msglen, "unknown bridge option '%s'", key);
}

int bridge_conf_check(const struct bridge_confs *bs, char *err, size_t errlen)
{
	for (int i = 0; i < bs->n; i++) {
		const struct bridge_conf *b = &bs->v[i];
		const char *w = b->where ? b->where : "bridge";
		const char *why = NULL;
		if (!b->n_addrs)
			why = "has no address";
		else if (!b->n_topics)
			why = "has no topic line: it would carry nothing";
		else if ((b->certfile != NULL) != (b->keyfile != NULL))
			why = "needs bridge_certfile and bridge_keyfile together";
		else if ((b->certfile || b->insecure) && !b->cafile && !b->capath)
			why = "has TLS keys but no bridge_cafile or bridge_capath: it would connect "
			      "without TLS; add bridge_cafile";
		else if (b->remote_password && !b->remote_username)
			why = "has remote_password without remote_username";
		if (why) {
			snprintf(err, errlen, "%s: connection %s %s", w, b->name, why);
			return -1;
		}
	}
	return 0;
}

const char *bridge_conf_remote_clientid(const struct bridge_conf *b, char *buf, size_t len)
{
	if (b->remote_clientid) {
		snprintf(buf, len, "%s", b->remote_clientid);
		return buf;
	}
	char host[256];
	if (gethostname(host, sizeof host) < 0)
		strcpy(host, "midge");
	host[sizeof host - 1] = '\0';
	snprintf(buf, len, "%s.%s", host, b->name);
	return buf;
}

const char *bridge_conf_local_clientid(const struct bridge_conf *b, char *buf, size_t len)
{
	if (b->local_clientid) {
		snprintf(buf, len, "%s", b->local_clientid);
		return buf;
	}
	char r[600];
	snprintf(buf, len, "local.%s", bridge_conf_remote_clientid(b, r, sizeof r));
	return buf;
}

const char *bridge_conf_notification_topic(const struct bridge_conf *b, char *buf, size_t len)
{
	if (b->notification_topic) {
		snprintf(buf, len, "%s", b->notification_topic);
		return buf;
	}
	char r[600];
	snprintf(buf, len, "$SYS/broker/connection/%s/state",
		 bridge_conf_remote_clientid(b, r, sizeof r));
	return buf;
}

void bridge_confs_clear(struct bridge_confs *bs)
{
	for (int i = 0; i < bs->n; i++) {
		struct bridge_conf *b = &bs->v[i];
		free(b->name);
		free(b->where);
		for (int k = 0; k < b->n_addrs; k++)
			free(b->addrs[k].host);
		for (int k = 0; k < b->n_topics; k++) {
			struct bridge_topic *t = &b->topics[k];
			free(t->pattern);
			free(t->local_prefix);
			free(t->remote_prefix);
			free(t->local_filter);
			free(t->remote_filter);
		}
		free(b->topics);
		free(b->remote_username);
		free(b->remote_password);
		free(b->remote_clientid);
		free(b->local_clientid);
		free(b->notification_topic);
		free(b->cafile);
		free(b->capath);
		free(b->certfile);
		free(b->keyfile);
	}
	free(bs->v);
	bs->v = NULL;
	bs->n = 0;
}
