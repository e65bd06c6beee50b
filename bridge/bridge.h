/*
 * bridge.h - bridges: MQTT client links from this broker to others,
 * configured with Mosquitto's keys (bridge/conf.h, docs/bridges.md).
 *
 * Rooms:
 *   conf.c   the keys of a `connection` section (bounded, fuzzed)
 *   link.c     one link's connection lifetime: resolve, non-blocking
 *              connect (fail-over over its addresses, restart with
 *              backoff), TLS (GnuTLS), start types, the set of links
 *   session.c  the MQTT client on midge's codec over that connection:
 *              CONNECT, SUBSCRIBE, PUBLISH both ways with topic
 *              remapping, acknowledgements, notifications
 *   link.h     what the two share (struct link, its states)
 *
 * The engine side (the bridge's queue towards the remote, its window,
 * its persistence, no loops) is engine/bridge.h. A link runs on the
 * engine's loop (it reads and writes engine state: it is of the engine
 * thread); its socket is its own, not a connection of transport/.
 */
#ifndef MIDGE_BRIDGE_BRIDGE_H
#define MIDGE_BRIDGE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bridge/conf.h"

struct engine;
struct bridges;

/*
 * Declares every configured bridge in the engine (their local filters in
 * the topic tree): before the store restores their queues. window: the
 * most QoS 1/2 messages in flight towards a remote (max_inflight_messages);
 * max_in: the largest packet read from a remote (0: the protocol's bound).
 * cfg must outlive the result. Returns NULL with why in err.
 */
struct bridges *bridges_new(uv_loop_t *loop, struct engine *e, const struct bridge_confs *cfg,
			    uint16_t window, uint32_t max_in, char *err, size_t errlen);
/* Starts the links (automatic and once connect now; lazy waits for its
 * threshold). Returns 0 or -1 with why in err (a TLS file). */
int bridges_start(struct bridges *bs, char *err, size_t errlen);
/* Disconnects every link (DISCONNECT, then close) and closes its handles:
 * before the loop's last run. */
void bridges_stop(struct bridges *bs);
/* After the loop closed the handles. */
void bridges_free(struct bridges *bs);

#endif
