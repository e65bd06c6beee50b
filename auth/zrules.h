/*
 * zrules.h - one client's ACL rules, as an auth worker returns them with
 * its "allow" answer (auth/zproto.c), checked locally for every publish,
 * subscribe and delivery afterwards (no worker is asked per message).
 *
 * The format is EMQX's, the one JWT `acl` claims use too: an ordered list
 *   {"permission": "allow"|"deny", "action": "publish"|"subscribe"|"all",
 *    "topic": FILTER, "qos": [0, 1, 2], "retain": true|false|"all"}
 * first match wins, nothing matching denies. "qos" (a level or a list,
 * optional: all) and "retain" (optional: "all") are conditions: a rule
 * applies only to an access of a listed QoS and, for a publish, of the
 * given retain flag; one that does not apply is passed over. "subscribe" rules govern
 * both subscribing and receiving (Mosquitto's read), "publish" rules
 * publishing (write). `%c` and `%u` as a whole level stand for the
 * client id and user name (a client without a user name matches no rule
 * with `%u`). A topic starting with `$` is matched by no rule whose first
 * level is a wildcard (as acl_file and topic matching do).
 *
 * Unify: this is the per-client rule-set the JWT side needs as well; the
 * type is opaque, built from a jansson array (zrules_from_json), shared
 * by reference (a cached decision and the connection hold the same one),
 * and asked one question (zrules_check).
 */
#ifndef MIDGE_AUTH_ZRULES_H
#define MIDGE_AUTH_ZRULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zrules;

/* Bounds of a rule list: more rules, or a longer topic, is a bad answer. */
#define ZRULES_MAX 1024u
#define ZRULES_MAX_TOPIC 65535u

enum zrules_access {
	ZRULES_PUBLISH = 1,   /* publish on a topic name */
	ZRULES_SUBSCRIBE = 2, /* subscribe with a filter */
	ZRULES_RECEIVE = 3,   /* receive a message on a topic name */
};

/*
 * Builds a rule set from `arr`, a json_t * array (void * so this header
 * needs no jansson). Returns it with one reference, or NULL with why in
 * err (not an array, a bad element, over the bounds, out of memory).
 * An empty array is a rule set that denies everything.
 */
struct zrules *zrules_from_json(const void *arr, char *err, size_t errlen);

/* References; zrules_unref(NULL) does nothing. Engine thread only (the
 * count is not atomic). */
struct zrules *zrules_ref(struct zrules *r);
void zrules_unref(struct zrules *r);

/* Number of rules, for the log. */
size_t zrules_count(const struct zrules *r);

/*
 * May the client (cid, and user when has_user) have `access` to
 * topic[0..len) (a filter for ZRULES_SUBSCRIBE: allowed when the first
 * matching rule covers every topic the filter can match) at QoS qos,
 * retained or not (retain is looked at for ZRULES_PUBLISH only)? No
 * allocation.
 */
bool zrules_check(const struct zrules *r, const char *cid, size_t cid_len, const char *user,
		  size_t user_len, bool has_user, const uint8_t *topic, size_t len,
		  enum zrules_access access, uint8_t qos, bool retain);

#endif
