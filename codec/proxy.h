/*
 * proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before anything else:
 * who the client really is. A pure parser over the bytes received so
 * far; the transport's PROXY layer (transport/proxy.c) feeds it.
 */
#ifndef MIDGE_CODEC_PROXY_H
#define MIDGE_CODEC_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROXY_V1_MAX 107          /* a whole v1 line, CRLF included (the specification's bound) */
#define PROXY_V2_MAX (16 + 1024)  /* a v2 header with its TLVs; longer is refused */
#define PROXY_PATH_MAX 108        /* an AF_UNIX address (sun_path) */

enum {
	PROXY_MORE = 0, /* the header is not complete yet */
	PROXY_ERR = -1, /* not a valid header of the expected version */
};

enum proxy_family {
	PROXY_LOCAL = 0, /* no address: v1 UNKNOWN, v2 LOCAL or AF_UNSPEC; keep the socket's */
	PROXY_INET = 4,
	PROXY_INET6 = 6,
	PROXY_UNIX = 1,
};

struct proxy_info {
	int family;           /* enum proxy_family */
	uint8_t addr[16];     /* the source address, 4 or 16 bytes */
	uint16_t port;        /* the source port */
	char path[PROXY_PATH_MAX + 1]; /* PROXY_UNIX: the source path */
	/* version 2 only, from the PP2_TYPE_SSL TLV */
	bool tls;             /* the client spoke TLS to the proxy */
	bool cert_verified;   /* and presented a certificate that verified */
	uint32_t cn_off, cn_len; /* its common name (PP2_SUBTYPE_SSL_CN) in the buffer; 0 length: none */
	const char *why;      /* PROXY_ERR: what is wrong (static text) */
};

/*
 * Parses the header of the given version (1 or 2) at the start of
 * buf[0..len), the bytes received so far. Returns the header's length
 * (> 0; what follows is the client's own stream), PROXY_MORE, or
 * PROXY_ERR with out->why. A prefix that can no longer become a header
 * is refused at once, so a client that sends no header is refused by
 * its first bytes.
 */
int proxy_parse(const uint8_t *buf, size_t len, int version, struct proxy_info *out);

#endif
