/*
 * want.h - what one publisher socket's subscribers want, in a form that
 * answers "does anyone want this event?" without looking at every prefix
 * (internal to hooks/; the unit tests use it directly).
 *
 * ZeroMQ prefixes are byte prefixes of the name frame, "<name>" or
 * "<name>/<topic>". Against one event name a prefix is one of:
 *   - all: it is a prefix of the name itself ("client.", "message.published"),
 *     or exactly "<name>/" for a message event: every event of the type;
 *   - some: "<name>/<topic prefix>" for a message event: only topics that
 *     start with <topic prefix>;
 *   - none.
 * hooks_want_rebuild() classifies every prefix once per change of the set
 * (not per event): a bit per type in `all`, and for the other types a
 * sorted array of topic prefixes from which every entry that another one
 * is a prefix of has been removed. In such a prefix-free sorted array only
 * the greatest entry not after the topic can be a prefix of it, so an event
 * is matched with one binary search, whatever the number of prefixes.
 */
#ifndef MIDGE_HOOKS_WANT_H
#define MIDGE_HOOKS_WANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

struct hooks_bytes {
	const char *p;
	size_t len;
};

struct hooks_want {
	struct hooks_bytes *v; /* distinct prefixes (malloc'd bytes), sorted */
	size_t n, cap;
	size_t max;            /* at most this many; 0 = HOOKS_DEFAULT_MAX_PREFIXES */
	bool everything;       /* a prefix could not be stored: want all */
	uint32_t all;          /* bit t: every event of type t is wanted */
	uint32_t some;         /* bit t: topics of type t in topics[t] are */
	uint32_t topical;      /* bit t: some prefix names topics of type t (all or not) */
	struct hooks_bytes *tv; /* the topic prefixes, a run per type */
	size_t toff[MIDGE_EV__COUNT], tn[MIDGE_EV__COUNT];
};

/* What hooks_want_add() did. */
enum hooks_want_add {
	HOOKS_WANT_ADDED = 0,
	HOOKS_WANT_KNOWN = 1,   /* already there */
	HOOKS_WANT_IGNORED = 2, /* over the bound: not stored, not acted on */
};

void hooks_want_init(struct hooks_want *w, size_t max);
void hooks_want_clear(struct hooks_want *w);

/* Adds a prefix. Out of memory makes the set want everything (rendering
 * too much is safe, too little loses events). Call
 * hooks_want_rebuild() after a batch of changes. */
enum hooks_want_add hooks_want_add(struct hooks_want *w, const char *p, size_t len);
/* Removes a prefix; one that is not there (ignored before) is no change. */
void hooks_want_remove(struct hooks_want *w, const char *p, size_t len);
/* Recomputes all, some and the topic arrays from the prefixes. */
void hooks_want_rebuild(struct hooks_want *w);

/* Does the set want an event of this type (with this topic for message
 * events; topic NULL for the others)? */
bool hooks_want_match(const struct hooks_want *w, enum midge_event_type type, const char *topic,
		      size_t tlen);

#endif
