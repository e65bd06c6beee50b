/*
 * tls_name.c - the subject DN of a certificate in Mosquitto's words:
 * OpenSSL's RFC 2253 printing (X509_NAME_print_ex, XN_FLAG_RFC2253), so
 * a user name taken from use_subject_as_username is the same string in
 * midge as in Mosquitto, and an acl_file written for one fits the other.
 */
#include "transport/tls_name.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* OpenSSL's short names of the attributes a subject carries. */
static const struct {
	const char *oid, *name;
} tls_name_short[] = {
	{"2.5.4.3", "CN"},
	{"2.5.4.4", "SN"},
	{"2.5.4.5", "serialNumber"},
	{"2.5.4.6", "C"},
	{"2.5.4.7", "L"},
	{"2.5.4.8", "ST"},
	{"2.5.4.9", "street"},
	{"2.5.4.10", "O"},
	{"2.5.4.11", "OU"},
	{"2.5.4.12", "title"},
	{"2.5.4.13", "description"},
	{"2.5.4.15", "businessCategory"},
	{"2.5.4.16", "postalAddress"},
	{"2.5.4.17", "postalCode"},
	{"2.5.4.18", "postOfficeBox"},
	{"2.5.4.41", "name"},
	{"2.5.4.42", "GN"},
	{"2.5.4.43", "initials"},
	{"2.5.4.44", "generationQualifier"},
	{"2.5.4.45", "x500UniqueIdentifier"},
	{"2.5.4.46", "dnQualifier"},
	{"2.5.4.65", "pseudonym"},
	{"2.5.4.97", "organizationIdentifier"},
	{"0.9.2342.19200300.100.1.1", "UID"},
	{"0.9.2342.19200300.100.1.25", "DC"},
	{"1.2.840.113549.1.9.1", "emailAddress"},
	{"1.2.840.113549.1.9.2", "unstructuredName"},
	{"1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"},
	{"1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"},
	{"1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"},
};

/* OpenSSL's charmap.h flags for the characters below 0x80 that matter. */
enum {
	ESC_2253 = 1,    /* , + " \ < > ; : backslash */
	ESC_CTRL = 2,    /* control characters: \XX */
	ESC_FIRST = 0x20, /* '#' or ' ' first */
	ESC_LAST = 0x40,  /* ' ' last */
};

static unsigned tls_name_char_type(uint8_t c)
{
	if (c < 0x20 || c == 0x7f)
		return ESC_CTRL;
	switch (c) {
	case ' ': return ESC_FIRST | ESC_LAST;
	case '#': return ESC_FIRST;
	case '"': case '+': case ',': case ';': case '<': case '>': case '\\': return ESC_2253;
	default: return 0;
	}
}

struct out {
	char *p;
	size_t len, n;
	bool over;
};

static void out_bytes(struct out *o, const char *s, size_t n)
{
	if (o->n + n >= o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static void out_hex_byte(struct out *o, uint8_t b)
{
	char h[4];
	snprintf(h, sizeof(h), "\\%02X", b);
	out_bytes(o, h, 3);
}

/* One byte of a value (OpenSSL's do_esc_char for RFC 2253 flags); pos
 * says whether it is the first or last character. */
static void out_value_byte(struct out *o, uint8_t c, unsigned pos)
{
	if (c > 0x7f) {
		out_hex_byte(o, c);
		return;
	}
	unsigned t = tls_name_char_type(c) & (ESC_2253 | ESC_CTRL | pos);
	if (t & (ESC_2253 | ESC_FIRST | ESC_LAST)) {
		char e[2] = {'\\', (char)c};
		out_bytes(o, e, 2);
	} else if (t & ESC_CTRL) {
		out_hex_byte(o, c);
	} else {
		out_bytes(o, (const char *)&c, 1);
	}
}

/* A code point as UTF-8 bytes, each escaped as a value byte. */
static void out_code_point(struct out *o, uint32_t cp, unsigned pos)
{
	uint8_t u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xC0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xE0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xF0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 4;
	}
	for (size_t i = 0; i < n; i++)
		out_value_byte(o, u[i], n == 1 ? pos : 0);
}

/* "#" and the DER (tag, length, content) in upper-case hex: what OpenSSL
 * prints for a value it does not read as a string. */
static void out_dump(struct out *o, unsigned long tag, const uint8_t *v, size_t n)
{
	uint8_t head[6];
	size_t h = 0;
	head[h++] = (uint8_t)(tag | (tag == 16 || tag == 17 ? 0x20 : 0));
	if (n < 0x80) {
		head[h++] = (uint8_t)n;
	} else {
		size_t bytes = n > 0xFFFFFF ? 4 : n > 0xFFFF ? 3 : n > 0xFF ? 2 : 1;
		head[h++] = (uint8_t)(0x80 | bytes);
		for (size_t i = bytes; i-- > 0;)
			head[h++] = (uint8_t)(n >> (8 * i));
	}
	char x[3];
	out_bytes(o, "#", 1);
	for (size_t i = 0; i < h + n; i++) {
		snprintf(x, sizeof(x), "%02X", i < h ? head[i] : v[i - h]);
		out_bytes(o, x, 2);
	}
}

/*
 * A value by its ASN.1 string type, as OpenSSL's do_print_ex with
 * ASN1_STRFLGS_RFC2253: UTF8String byte by byte; one-byte types as
 * Latin-1 converted to UTF-8; BMPString (UCS-2) and UniversalString
 * (UCS-4) converted to UTF-8; anything else dumped.
 */
static void out_value(struct out *o, unsigned long tag, const uint8_t *v, size_t n)
{
	size_t width;
	switch (tag) {
	case 12: width = 0; break;                    /* UTF8String */
	case 18: case 19: case 20: case 21: case 22:  /* Numeric, Printable, T61, Videotex, IA5 */
	case 23: case 24: case 25: case 26: case 27:  /* times, Graphic, ISO646, General */
		width = 1;
		break;
	case 28: width = 4; break;                    /* UniversalString */
	case 30: width = 2; break;                    /* BMPString */
	default: out_dump(o, tag, v, n); return;
	}
	size_t step = width ? width : 1;
	if (n % step) {
		out_dump(o, tag, v, n);
		return;
	}
	for (size_t i = 0; i < n; i += step) {
		unsigned pos = (i + step >= n ? ESC_LAST : i == 0 ? ESC_FIRST : 0);
		if (width == 0) {
			out_value_byte(o, v[i], pos);
			continue;
		}
		uint32_t cp = 0;
		for (size_t k = 0; k < width; k++)
			cp = cp << 8 | v[i + k];
		out_code_point(o, cp, pos);
	}
}

long tls_name_subject(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	gnutls_x509_dn_t dn;
	struct out o = {buf, len, 0, false};
	if (len == 0 || gnutls_x509_crt_get_subject(crt, &dn) < 0)
		return -1;
	buf[0] = '\0';
	int nrdn = 0;
	gnutls_x509_ava_st ava;
	while (gnutls_x509_dn_get_rdn_ava(dn, nrdn, 0, &ava) == 0)
		nrdn++;
	/* most specific first, and within a multi-valued RDN the last first,
	 * as XN_FLAG_DN_REV walks the entries backwards */
	bool first = true;
	for (int i = nrdn - 1; i >= 0; i--) {
		int nava = 0;
		while (gnutls_x509_dn_get_rdn_ava(dn, i, nava, &ava) == 0)
			nava++;
		for (int j = nava - 1; j >= 0; j--) {
			if (gnutls_x509_dn_get_rdn_ava(dn, i, j, &ava) < 0)
				return -1;
			if (!first)
				out_bytes(&o, j == nava - 1 ? "," : "+", 1);
			first = false;
			size_t olen = strnlen((const char *)ava.oid.data, ava.oid.size);
			const char *name = NULL;
			for (size_t k = 0; k < sizeof(tls_name_short) / sizeof(tls_name_short[0]); k++)
				if (strlen(tls_name_short[k].oid) == olen &&
				    memcmp(tls_name_short[k].oid, ava.oid.data, olen) == 0)
					name = tls_name_short[k].name;
			out_bytes(&o, name ? name : (const char *)ava.oid.data, name ? strlen(name) : olen);
			out_bytes(&o, "=", 1);
			if (name)
				out_value(&o, ava.value_tag, ava.value.data, ava.value.size);
			else
				out_dump(&o, ava.value_tag, ava.value.data, ava.value.size);
		}
	}
	return o.over ? -1 : (long)o.n;
}
