/*
 * ws_xport.h - the WebSocket layer's state, shared by its rooms (internal
 * to transport/): ws.c (the layer's xport operations: read, writev,
 * flush, shutdown), ws_http.c (the upgrade handshake, its limits, HTTP
 * answers and http_dir files) and ws_frame.c (scanning incoming frames,
 * wslay for control frames).
 */
#ifndef MIDGE_TRANSPORT_WS_XPORT_H
#define MIDGE_TRANSPORT_WS_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wslay/wslay.h>

#include "codec/http.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/ws.h"
#include "transport/xport.h"

/* While the request head is read. */
struct ws_handshake {
	struct http_request req;
	struct rbuf *buf; /* the head from its first byte */
};

struct ws_xport {
	struct xport base; /* first: the layer is its xport */
	struct ws_conf *conf;
	struct rbuf_pool *pool;
	struct ws_handshake *hs;     /* NULL once answered */
	wslay_event_context_ptr ctx; /* NULL until the upgrade */
	struct outq out;             /* our bytes for below: answers, control frames, frame headers */
	struct outq_pos out_pos;
	int file_fd;                 /* a file being sent (-1: none) */
	uint64_t max_frame;
	uint64_t frame_left;         /* payload of the frame whose header is in out, still to go */
	uint64_t msg_len;            /* payload of the incoming message so far */
	/* the read in progress */
	int fd;
	uint8_t *rd;
	size_t rd_room, rd_got;
	const char *refused; /* we refused the peer: why */
	bool close_queued;
	bool ended;          /* reading has ended (a refusal or a Close) */
	bool more_below;     /* the last read of below filled what was asked: it may hold more */
	bool msg_open;       /* a fragmented binary message goes on */
	/* the frame being scanned (see ws_scan) */
	struct rbuf *raw;    /* frames read from below, from raw_off on not scanned */
	uint32_t raw_off;
	uint8_t in;          /* WS_IN_* */
	uint8_t hdr[14], hdr_len;
	uint8_t key[4];
	unsigned phase;      /* of the mask, at the next payload byte */
	uint64_t left;       /* payload bytes of the frame still to come */
	uint8_t wsl[14 + 125]; /* the frame handed to wslay */
	uint32_t wsl_len, wsl_off;
	char why[192];
};

/* ws_http.c */

/*
 * Reads the request head until it is complete, the peer pauses, or it
 * passes websockets_headers_size (431), and answers it: 101 (then the
 * bytes behind the head are the first frames, in w->raw), a file, or an
 * HTTP error. Returns 1 once upgraded, else what ws_read returns
 * (XPORT_CLOSE once a file is answered, XPORT_REFUSED after an error
 * answer, XPORT_AGAIN, XPORT_FAIL).
 */
ssize_t ws_handshake_read(struct ws_xport *w, const char **why);
/* The next piece of the file being sent into out; closes it at its end.
 * Returns 0 or -1 (reading it failed, out of memory). */
int ws_file_more(struct ws_xport *w);

/* ws_frame.c */

/* The wslay context for the frames after 101. Returns 0 or -1 (OOM). */
int ws_wslay_start(struct ws_xport *w);
/* Moves the control frames wslay queued into out; only between data
 * frames (a control frame inside one would corrupt it). Returns 0 or -1
 * (OOM). */
int ws_pull_control(struct ws_xport *w);
/*
 * Scans raw[*off..len): data payload unmasked into the caller's buffer
 * (w->rd, as far as it has room), other frames to wslay. Returns false
 * once reading has ended (a refusal or a Close).
 */
bool ws_scan(struct ws_xport *w, const uint8_t *raw, uint32_t len, uint32_t *off);

#endif
