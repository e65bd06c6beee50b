/*
 * clientauth.h - what an authentication source gave a connected client
 * besides "come in": its own ACL rules (auth/rules.h: a JWT's acl claim;
 * a ZeroMQ auth worker's rules) and the time its credentials expire (a
 * JWT's exp), after which it is disconnected (v5: DISCONNECT 0xA0,
 * Maximum connect time).
 *
 * Engine thread only. Entries are found by client id (the engine's ACL
 * callback gets a client record, sometimes a copy, never the
 * connection), one per client id, and belong to one engine connection:
 * a CONNECT that takes over a client id replaces the entry only once the
 * engine accepts it (the previous one is kept aside until then), and a
 * connection's end removes only its own entry.
 */
#ifndef MIDGE_TRANSPORT_CLIENTAUTH_H
#define MIDGE_TRANSPORT_CLIENTAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "midge.h"

struct midge;
struct rules;

/* Creates m->clientauth and its key-file watch (a 1 s timer that
 * rebuilds the JWT verifier when its file changed). 0 or -1 (OOM). */
int clientauth_start(struct midge *m);
/* Frees every entry and closes the timers. */
void clientauth_stop(struct midge *m);

/*
 * Before the engine hears the decision on ec's held CONNECT (client id
 * cid[0..len)): rules (taken; may be NULL) are its ACL, and, exp_s
 * non-zero, it is disconnected at that time (seconds since the epoch).
 * An entry of another connection with the same client id is kept aside.
 * Returns 0, or -1 on OOM (rules freed; refuse the CONNECT).
 */
int clientauth_attach(struct midge *m, struct engine_conn *ec, const char *cid, size_t len,
		      struct rules *rules, int64_t exp_s);
/* The engine refused ec's CONNECT after all: its entry goes, the one it
 * replaced comes back. */
void clientauth_refused(struct midge *m, struct engine_conn *ec, const char *cid, size_t len);

/* Every engine event (glue.c): a CONNECT accepted settles the client id's
 * entry, a DISCONNECT removes the connection's own. */
void clientauth_on_event(struct midge *m, const struct midge_event *ev);

/*
 * The client's own rules, when it has some: 0 or MQTT_RC_NOT_AUTHORIZED
 * (publish and subscribe by the rules; receive allowed, as the
 * subscription was checked). -1: no rules for this client (the realm's
 * acl_file decides).
 */
int clientauth_acl(struct midge *m, const struct midge_client *cl, const uint8_t *topic,
		   size_t len, enum engine_access access, uint8_t qos, bool retain);

/* Clients with an entry now (tests, the log). */
size_t clientauth_count(const struct midge *m);

#endif
