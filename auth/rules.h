/*
 * rules.h - one client's own ACL rules: an ordered list of
 * allow/deny rules for publish and subscribe, first match wins, nothing
 * matching denied. An authentication source hands them over at CONNECT
 * (the `acl` claim of a JWT, auth/jwt.c; a ZeroMQ auth worker's answer)
 * and they are that client's ACL for as long as it is connected, in place
 * of the acl_file (transport/clientauth.c attaches them).
 *
 * The input format is EMQX's (its JWT `acl` claim and its HTTP/ZMQ
 * authorization results): a JSON array of
 *   {"permission": "allow"|"deny", "action": "publish"|"subscribe"|"all",
 *    "topic": FILTER}
 * %c and %u in FILTER are replaced by the client id and user name when
 * they are a whole topic level, as in acl_file patterns; a rule naming %u
 * for a client without a user name never matches. A rule with any other
 * key (EMQX's qos, retain) is refused rather than ignored: ignoring it
 * would allow more than the issuer meant.
 *
 * A rule set is built once and then read-only: any thread may check it.
 * Checks walk the rules in order (bounded by RULES_MAX), comparing
 * levels; nothing is allocated.
 */
#ifndef MIDGE_AUTH_RULES_H
#define MIDGE_AUTH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULES_MAX 256u            /* rules per client */
#define RULES_MAX_TOPIC 65535u    /* bytes of one filter, after substitution */
#define RULES_MAX_JSON (64u * 1024u) /* bytes of the JSON text rules_parse() reads */

/* Actions, as bits. */
#define RULES_PUBLISH 1u
#define RULES_SUBSCRIBE 2u

struct rules;

/* The client the %c/%u substitution is for (user NULL: anonymous). */
struct rules_who {
	const char *cid;
	size_t cid_len;
	const char *user;
	size_t user_len;
};

/*
 * Parses EMQX-format rules from json[0..len) for who. Returns the rule
 * set (possibly empty: everything denied), or NULL with the reason in err
 * (not an array, a rule without permission/action/topic or with an
 * unknown key or value, an invalid filter, a bound above, OOM).
 */
struct rules *rules_parse(const char *json, size_t len, const struct rules_who *who, char *err,
			  size_t errlen);
/* The same from a parsed jansson array (a json_t *, kept opaque here so
 * users need not include jansson.h). */
struct rules *rules_from_json(const void *array, const struct rules_who *who, char *err,
			      size_t errlen);
/* rules_free(NULL) does nothing. */
void rules_free(struct rules *r);
size_t rules_count(const struct rules *r);

/*
 * May the client publish on the topic name topic[0..len)
 * (action RULES_PUBLISH), or subscribe to the filter topic[0..len)
 * (RULES_SUBSCRIBE: a rule matches when its filter covers every topic the
 * subscription's does, `$share/GROUP/` looked through)? The first rule
 * that matches decides; none matching: false.
 */
bool rules_check(const struct rules *r, unsigned action, const uint8_t *topic, size_t len);

/* Whether filter f[0..fl) matches topic name t[0..tl) (MQTT 4.7, the `$`
 * rule included). Exposed for tests. */
bool rules_topic_matches(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl);
/* Whether filter a covers filter b: every topic b matches, a does. */
bool rules_filter_covers(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

#endif
