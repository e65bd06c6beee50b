/*
 * rules.h - one client's own ACL rules: an ordered list of allow/deny
 * rules, first match wins, nothing matching denied. Two sources hand
 * them over at CONNECT, in the same format: the `acl` claim of a JWT
 * (auth/jwt.c; transport/clientauth.c keeps them while the client is
 * connected) and an auth worker's "allow" answer (auth/zproto.c;
 * transport/zauth_rules.c keeps them while the session lives). Either
 * way they replace the acl_file for that client and are checked locally
 * for every message (no allocation, no worker asked).
 *
 * The format is EMQX's (its JWT `acl` claim and its HTTP authorization
 * results): a JSON array of
 *   {"permission": "allow"|"deny", "action": "publish"|"subscribe"|"all",
 *    "topic": FILTER, "qos": 0|1|2|[...], "retain": true|false|"all"}
 * "subscribe" rules govern both subscribing and receiving (Mosquitto's
 * read), "publish" rules publishing (write). "qos" (optional: all) and
 * "retain" (optional: "all") are conditions: a rule applies only to an
 * access at a listed QoS and, for a publish, with the given retain flag;
 * one that does not apply is passed over. `%c` and `%u` as a whole level
 * stand for the client id and user name (a client without a user name
 * matches no rule with `%u`; a name holding '/', '+' or '#' is no single
 * level and matches nothing). A topic starting with `$` is matched by no
 * rule whose first level is a wildcard (as acl_file and topic matching
 * do).
 *
 * A rule set is built once and then read-only; it is shared by
 * reference (a cached worker decision and the clients it let in hold the
 * same one). The count is not atomic: one thread at a time (a set built
 * on the password pool is handed to the engine thread, which then owns
 * it). Checks walk the rules in order (bounded by the caller's maximum);
 * a rule whose first level is literal is passed over with one comparison
 * when the subject's differs.
 */
#ifndef MIDGE_AUTH_RULES_H
#define MIDGE_AUTH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULES_MAX_TOKEN 256u         /* rules in a JWT acl claim */
#define RULES_MAX_WORKER 1024u       /* rules in a worker's answer */
#define RULES_MAX_TOPIC 65535u       /* bytes of one filter, after substitution */
#define RULES_MAX_JSON (64u * 1024u) /* bytes of the JSON text rules_parse() reads */

struct rules;

enum rules_access {
	RULES_PUBLISH = 1,   /* publish on a topic name */
	RULES_SUBSCRIBE = 2, /* subscribe with a filter */
	RULES_RECEIVE = 3,   /* receive a message on a topic name */
};

/* The client %c/%u stand for (user NULL: none, so %u matches nothing). */
struct rules_who {
	const char *cid;
	size_t cid_len;
	const char *user;
	size_t user_len;
};

/* How a rule list is read. */
struct rules_opts {
	size_t max; /* rules at most (RULES_MAX_TOKEN, RULES_MAX_WORKER) */
	/* refuse a rule with a key other than the five above, or a filter
	 * whose '+' or '#' is not a whole level ('#' last): a token is
	 * refused rather than applied loosely. Not strict (a worker's
	 * answer), other keys are ignored and such a filter's levels are
	 * compared as text. */
	bool strict;
	/* non-NULL: %c and %u are substituted now, for this client (a
	 * token's rules, made for one CONNECT; a rule that can never match
	 * is dropped); NULL: at every check, with the client checked. */
	const struct rules_who *who;
};

/*
 * Builds a rule set from `array`, a jansson json_t * array (void * so
 * this header needs no jansson). Returns it with one reference (possibly
 * empty: everything denied), or NULL with why in err (not an array, a
 * rule without permission/action/topic strings, a bad value, over the
 * bounds, out of memory).
 */
struct rules *rules_from_json(const void *array, const struct rules_opts *o, char *err,
			      size_t errlen);
/* The same from JSON text json[0..len), at most RULES_MAX_JSON bytes. */
struct rules *rules_parse(const char *json, size_t len, const struct rules_opts *o, char *err,
			  size_t errlen);

/* References; rules_unref(NULL) does nothing. */
struct rules *rules_ref(struct rules *r);
void rules_unref(struct rules *r);

/* Number of rules (after any dropped at substitution), for the log. */
size_t rules_count(const struct rules *r);

/*
 * May the client `who` (used for rules substituted at check time; may be
 * NULL for a set built with opts.who) have `access` to topic[0..len) (a
 * filter for RULES_SUBSCRIBE, `$share/GROUP/` looked through: allowed
 * when the first matching rule covers every topic the filter can match)
 * at QoS qos, retained or not (retain is looked at for RULES_PUBLISH
 * only, as EMQX does)? r NULL: false. No allocation.
 */
bool rules_check(const struct rules *r, const struct rules_who *who, const uint8_t *topic,
		 size_t len, enum rules_access access, uint8_t qos, bool retain);

/* Whether filter f[0..fl) matches topic name t[0..tl) (MQTT 4.7, the `$`
 * rule included), and whether filter a covers filter b (every topic b
 * matches, a does). What rules_check decides with; exposed for tests. */
bool rules_topic_matches(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl);
bool rules_filter_covers(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

#endif
