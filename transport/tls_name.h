/*
 * tls_name.h - a client certificate's subject as the user name
 * (use_subject_as_username), written as Mosquitto writes it: OpenSSL's
 * X509_NAME_print_ex with XN_FLAG_RFC2253 (most specific attribute first,
 * OpenSSL's short names, RFC 2253 escapes, bytes over 0x7f as \XX, unknown
 * attributes as #hex of their DER). Only tls.c uses it.
 */
#ifndef MIDGE_TRANSPORT_TLS_NAME_H
#define MIDGE_TRANSPORT_TLS_NAME_H

#include <stddef.h>

#include <gnutls/x509.h>

/* The subject of crt into buf. Returns its length, or -1 when it does
 * not fit or cannot be read. */
long tls_name_subject(gnutls_x509_crt_t crt, char *buf, size_t len);

#endif
