/*
 * link.h - one bridge link, shared by its two rooms (bridge/bridge.h):
 *   link.c     the connection's lifetime: resolve, non-blocking connect
 *              over the address list (fail-over, round_robin), TLS,
 *              failure and restart with backoff, start types (automatic,
 *              lazy with threshold and idle_timeout, once), keepalive
 *              timing, the set of links (bridges_new/start/stop/free)
 *   session.c  the MQTT session on a connected socket: CONNECT (with the
 *              bridge bit), CONNACK, SUBSCRIBE, PUBLISH both ways with
 *              topic remapping, acknowledgements, notifications, the
 *              output buffer and the framed input
 *
 * States: IDLE (waiting for its restart timer, or for a lazy bridge's
 * threshold) -> RESOLVING (uv_getaddrinfo) -> CONNECTING (a non-blocking
 * connect, polled for writable) -> TLS (the GnuTLS handshake, when
 * bridge_cafile or bridge_capath is set) -> CONNACK (CONNECT sent) -> UP.
 * Any failure closes the socket, tells the engine (the queue keeps what
 * the remote has not acknowledged) and arms the restart timer: the next
 * address, restart_timeout's base doubled per failure up to its cap.
 *
 * Output is one buffer written as the socket takes it; messages are taken
 * from the engine (engine_bridge_next()) only while it holds less than
 * LINK_OUT_HIGH bytes, so a slow remote leaves them in the engine's
 * bounded queue. Input is framed by codec_frames() in a buffer that grows
 * to the packet being read, bounded by the codec's limit.
 *
 * Everything here runs on the engine's loop.
 */
#ifndef MIDGE_BRIDGE_LINK_H
#define MIDGE_BRIDGE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "bridge/bridge.h"
#include "codec/codec.h"

#define LINK_OUT_HIGH (256u * 1024u)
#define LINK_IN_START 4096u
#define LINK_CONNECT_TIMEOUT_MS 30000u
/* The window's packet ids stay below 65000 + 64, so SUBSCRIBE's is free. */
#define LINK_MAX_WINDOW 65000u
#define LINK_SUBSCRIBE_ID 65535u

enum link_state { LINK_IDLE, LINK_RESOLVING, LINK_CONNECTING, LINK_TLS, LINK_CONNACK, LINK_UP };

struct link {
	struct bridges *bs;
	const struct bridge_conf *cf;
	struct engine_bridge *eb;
	enum link_state state;
	int fd;
	uv_poll_t poll;
	bool poll_open;
	uv_timer_t timer;   /* restart, then once a second: keepalive, time bounds, idle */
	uv_idle_t kick;     /* the engine queued something: pump on the next pass */
	uv_getaddrinfo_t gai;
	bool gai_busy;
	gnutls_session_t tls;
	gnutls_certificate_credentials_t creds;
	int addr_idx;
	uint32_t failures;   /* in a row, for the backoff */
	bool stopping;
	uint64_t state_since, last_out, last_in, last_msg;
	bool ping_out;
	uint16_t remote_max_in;  /* the remote's receive maximum (v5) */
	uint32_t remote_max_packet; /* the remote's maximum packet size (v5), 0 none */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t qos2_in[8192]; /* incoming QoS 2 ids awaiting PUBREL: a bit each */
	char remote_id[600], local_id[600], note_topic[700];
};

struct bridges {
	uv_loop_t *loop;
	struct engine *e;
	uint16_t window;
	uint32_t max_in; /* the largest packet read from a remote */
	struct link *links;
	int n;
};

/* Wall-clock milliseconds (the engine's time base). */
static inline uint64_t link_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- link.c: the connection's lifetime ---- */

/* Logs why, closes the connection and times the next attempt (none for
 * start_type once). The link is IDLE afterwards: callers stop touching
 * the socket. */
void link_fail(struct link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Polls the socket for what the state and the output need. */
void link_poll_update(struct link *l);
/* Runs link_on_kick on the loop's next pass (pump, TLS's pending input). */
void link_kick(struct link *l);

/* ---- session.c: the MQTT session on the socket ---- */

/* Sends CONNECT (with the notification will unless local only, the
 * bridge bit with try_private) and moves to CONNACK. Returns 0, or -1
 * after link_fail(). */
int link_send_connect(struct link *l);
/* Sends a packet without a body (PINGREQ, DISCONNECT) now. Returns 0 or
 * -1 (encoding, OOM, or the link failed). */
int link_send_bare(struct link *l, uint8_t type);
/* Writes what the socket takes. Returns 0, or -1 after link_fail(). */
int link_flush(struct link *l);
/* Reads what the socket has and handles every complete packet (the link
 * may have failed on return: l->fd < 0). */
void link_read(struct link *l);
/* Moves messages from the engine into the output while the link is up and
 * the output holds less than LINK_OUT_HIGH, then flushes. */
void link_pump(struct link *l);
/* engine_bridge_answer_cb: an acknowledgement for the remote may go (the
 * store committed what it acknowledges): into the output, flushed on the
 * loop's next pass; dropped when the link is no longer up. */
void link_answer(void *ctx, uint8_t type, uint16_t packet_id, uint8_t rc);
/* Publishes the bridge's state ("1" up, "0" down) retained on the local
 * broker, as Mosquitto does (notifications). */
void link_notify_local(struct link *l, bool up);

#endif
