/*
 * proxy.c - the PROXY protocol header, versions 1 (a text line) and 2
 * (binary, with TLVs), as proxy-protocol.txt defines them. Bounded by the
 * specification's sizes (PROXY_V1_MAX, PROXY_V2_MAX); reads only what
 * buf holds; allocates nothing.
 */
#include "codec/proxy.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t proxy_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_CN 0x22
#define PP2_CLIENT_SSL 0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04

static int proxy_fail(struct proxy_info *out, const char *why)
{
	out->why = why;
	return PROXY_ERR;
}

/* ---- version 1 ----------------------------------------------------------- */

/* A port: 1 to 5 digits, 0..65535, no leading zero. */
static bool proxy_v1_port(const char *s, uint16_t *out)
{
	size_t n = strlen(s);
	unsigned long v = 0;
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT" or "PROXY UNKNOWN ...", without
 * its CRLF, in line (NUL-terminated, at most PROXY_V1_MAX bytes). */
static int proxy_v1_line(char *line, struct proxy_info *out)
{
	char *f[6];
	int n = 0;
	char *p = line;
	/* Fields are separated by exactly one space; the sixth keeps the
	 * rest of the line, so a seventh field shows as a space in it. */
	for (;;) {
		f[n++] = p;
		char *sp = n < 6 ? strchr(p, ' ') : NULL;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	if (strcmp(f[0], "PROXY") != 0 || n < 2)
		return proxy_fail(out, "PROXY v1: no PROXY keyword");
	if (strcmp(f[1], "UNKNOWN") == 0) {
		out->family = PROXY_LOCAL; /* the rest of the line is ignored */
		return 0;
	}
	bool v6 = strcmp(f[1], "TCP6") == 0;
	if (!v6 && strcmp(f[1], "TCP4") != 0)
		return proxy_fail(out, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (n != 6 || strchr(f[5], ' '))
		return proxy_fail(out, "PROXY v1: not 4 fields after the protocol");
	uint8_t dst[16];
	uint16_t dport;
	int af = v6 ? AF_INET6 : AF_INET;
	if (inet_pton(af, f[2], out->addr) != 1 || inet_pton(af, f[3], dst) != 1)
		return proxy_fail(out, "PROXY v1: bad address");
	if (!proxy_v1_port(f[4], &out->port) || !proxy_v1_port(f[5], &dport))
		return proxy_fail(out, "PROXY v1: bad port");
	out->family = v6 ? PROXY_INET6 : PROXY_INET;
	return 0;
}

static int proxy_v1(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	static const char prefix[] = "PROXY ";
	size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	for (size_t i = 0; i < n && i < sizeof(prefix) - 1; i++)
		if (buf[i] != (uint8_t)prefix[i])
			return proxy_fail(out, "no PROXY v1 header");
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n')
			return proxy_fail(out, "PROXY v1: line ends without CR");
		if (buf[i] == 0)
			return proxy_fail(out, "PROXY v1: NUL in the line");
		if (buf[i] != '\r')
			continue;
		if (i + 1 == n)
			break; /* the LF may still come */
		if (buf[i + 1] != '\n')
			return proxy_fail(out, "PROXY v1: CR without LF");
		char line[PROXY_V1_MAX + 1];
		memcpy(line, buf, i);
		line[i] = '\0';
		int rc = proxy_v1_line(line, out);
		return rc < 0 ? rc : (int)(i + 2);
	}
	if (n == PROXY_V1_MAX)
		return proxy_fail(out, "PROXY v1: line longer than 107 bytes");
	return PROXY_MORE;
}

/* ---- version 2 ----------------------------------------------------------- */

static uint16_t proxy_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The sub-TLVs of a PP2_TYPE_SSL value v[0..n) at offset base of the
 * header. */
static int proxy_v2_ssl(const uint8_t *v, size_t n, uint32_t base, struct proxy_info *out)
{
	if (n < 5)
		return proxy_fail(out, "PROXY v2: SSL TLV too short");
	uint8_t client = v[0];
	uint32_t verify = (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
	out->tls = (client & PP2_CLIENT_SSL) != 0;
	out->cert_verified =
		out->tls && (client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)) && verify == 0;
	for (size_t i = 5; i < n;) {
		if (n - i < 3)
			return proxy_fail(out, "PROXY v2: truncated SSL sub-TLV");
		size_t l = proxy_be16(v + i + 1);
		if (l > n - i - 3)
			return proxy_fail(out, "PROXY v2: SSL sub-TLV overruns");
		if (v[i] == PP2_SUBTYPE_SSL_CN) {
			out->cn_off = base + (uint32_t)(i + 3);
			out->cn_len = (uint32_t)l;
		}
		i += 3 + l;
	}
	return 0;
}

static int proxy_v2_tlvs(const uint8_t *buf, size_t start, size_t end, struct proxy_info *out)
{
	for (size_t i = start; i < end;) {
		if (end - i < 3)
			return proxy_fail(out, "PROXY v2: truncated TLV");
		size_t l = proxy_be16(buf + i + 1);
		if (l > end - i - 3)
			return proxy_fail(out, "PROXY v2: TLV overruns the header");
		if (buf[i] == PP2_TYPE_SSL && proxy_v2_ssl(buf + i + 3, l, (uint32_t)(i + 3), out) < 0)
			return PROXY_ERR;
		i += 3 + l;
	}
	return 0;
}

static int proxy_v2(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	for (size_t i = 0; i < len && i < sizeof(proxy_v2_sig); i++)
		if (buf[i] != proxy_v2_sig[i])
			return proxy_fail(out, "no PROXY v2 header");
	if (len < 16)
		return PROXY_MORE;
	uint8_t ver_cmd = buf[12], fam = buf[13];
	size_t body = proxy_be16(buf + 14);
	if ((ver_cmd & 0xF0) != 0x20)
		return proxy_fail(out, "PROXY v2: version is not 2");
	if ((ver_cmd & 0x0F) > 1)
		return proxy_fail(out, "PROXY v2: command is neither LOCAL nor PROXY");
	if (16 + body > PROXY_V2_MAX)
		return proxy_fail(out, "PROXY v2: header longer than midge accepts (1040 bytes)");
	if (len < 16 + body)
		return PROXY_MORE;
	size_t need = 0;
	int family = PROXY_LOCAL;
	switch (fam) {
	case 0x11: /* TCP over IPv4 */
	case 0x12: /* UDP: an address all the same */
		need = 12;
		family = PROXY_INET;
		break;
	case 0x21:
	case 0x22:
		need = 36;
		family = PROXY_INET6;
		break;
	case 0x31:
	case 0x32:
		need = 216;
		family = PROXY_UNIX;
		break;
	case 0x00:
		break; /* AF_UNSPEC: no address */
	default:
		return proxy_fail(out, "PROXY v2: unknown address family or protocol");
	}
	if (body < need)
		return proxy_fail(out, "PROXY v2: address block shorter than its family needs");
	const uint8_t *a = buf + 16;
	if ((ver_cmd & 0x0F) == 0) {
		family = PROXY_LOCAL; /* LOCAL: the proxy's own connection (a health check) */
	} else if (family == PROXY_INET) {
		memcpy(out->addr, a, 4);
		out->port = proxy_be16(a + 8);
	} else if (family == PROXY_INET6) {
		memcpy(out->addr, a, 16);
		out->port = proxy_be16(a + 32);
	} else if (family == PROXY_UNIX) {
		size_t n = strnlen((const char *)a, PROXY_PATH_MAX);
		memcpy(out->path, a, n);
		out->path[n] = '\0';
	}
	out->family = family;
	if (proxy_v2_tlvs(buf, 16 + need, 16 + body, out) < 0)
		return PROXY_ERR;
	return (int)(16 + body);
}

int proxy_parse(const uint8_t *buf, size_t len, int version, struct proxy_info *out)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return PROXY_MORE;
	return version == 1 ? proxy_v1(buf, len, out) : proxy_v2(buf, len, out);
}
