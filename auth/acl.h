/*
 * acl.h - Mosquitto's acl_file: who may publish (write) and receive (read)
 * which topics.
 *
 * The file format and the decision are Mosquitto's (src/security_default.c
 * of 2.0, pattern substitution of 2.1):
 *   - `topic [read|write|readwrite|deny] TOPIC` lines before any `user`
 *     line are the anonymous section (clients without a user name);
 *   - `user NAME` starts NAME's section; its `topic` lines are NAME's;
 *   - `pattern [read|write|readwrite|deny] TOPIC` lines apply to every
 *     client wherever they stand, with `%c` (client id) and `%u` (user
 *     name) substituted when they are a whole topic level;
 *   - a line starting with `#` is a comment, blank lines are skipped.
 * For one client: its section's rules first (any matching deny refuses,
 * else any matching rule granting the access allows), then the patterns
 * the same way; nothing matching refuses. A topic starting with `$` is
 * matched only by rules whose first level is literally its own.
 *
 * Rules are compiled into one trie per section (and two for patterns):
 * a check costs the topic's depth times the wildcards met, whatever the
 * number of users or rules. Sections are found by user name in a hash
 * table.
 */
#ifndef MIDGE_AUTH_ACL_H
#define MIDGE_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

/* Bounds of what acl_parse() accepts: a file over them is refused. */
#define ACL_MAX_FILE (16u * 1024u * 1024u) /* bytes */
#define ACL_MAX_LINE 65600u                /* a 65535-byte topic and its keywords */
#define ACL_MAX_LEVELS 201u                /* Mosquitto's TOPIC_HIERARCHY_LIMIT + 1 */
#define ACL_MAX_NODES (4u * 1024u * 1024u) /* trie nodes, all sections together */

enum acl_access {
	ACL_READ = 1,  /* receive a message on the topic */
	ACL_WRITE = 2, /* publish on the topic */
};

/* Who asks: the client id and, when the client gave one, its user name
 * (has_user false: anonymous; an empty name is a name). */
struct acl_who {
	const char *cid;
	size_t cid_len;
	const char *user;
	size_t user_len;
	bool has_user;
};

/* Warnings (a pattern without %c or %u) while parsing, as "name:line: text". */
typedef void (*acl_warn_cb)(void *user, const char *text);

/*
 * Parses an acl_file's text, text[0..len) (need not be NUL-terminated).
 * name is used in messages ("name:line: why"). Returns the compiled ACL,
 * or NULL with the first error in err (a line Mosquitto refuses too, a
 * bound above, or out of memory).
 */
struct acl *acl_parse(const char *text, size_t len, const char *name, acl_warn_cb warn,
		      void *warn_user, char *err, size_t errlen);
/* Reads and parses the file at path (at most ACL_MAX_FILE bytes). */
struct acl *acl_load(const char *path, acl_warn_cb warn, void *warn_user, char *err,
		     size_t errlen);
/* acl_free(NULL) does nothing. */
void acl_free(struct acl *a);

/* May who have access (ACL_READ or ACL_WRITE) to the topic name
 * topic[0..len)? */
bool acl_check(const struct acl *a, const struct acl_who *who, const uint8_t *topic, size_t len,
	       enum acl_access access);

/*
 * Could any topic the filter filter[0..len) matches be readable by who?
 * false only when none can (every rule that grants read is disjoint from
 * the filter, or a deny covers all of it): a SUBSCRIBE is refused then,
 * otherwise each message is checked at delivery. A `$share/GROUP/`
 * prefix is looked through.
 */
bool acl_filter_readable(const struct acl *a, const struct acl_who *who, const uint8_t *filter,
			 size_t len);

/* Rules (topic and pattern lines) and user sections read, for the log. */
void acl_counts(const struct acl *a, size_t *rules, size_t *users);

#endif
