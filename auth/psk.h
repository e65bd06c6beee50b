/*
 * psk.h - Mosquitto's psk_file: "identity:key" lines (the pwfile.h
 * format), key in hexadecimal, for TLS-PSK listeners (psk_hint). Read-only
 * once loaded and refcounted by its owner's thread, like passwd.h.
 */
#ifndef MIDGE_AUTH_PSK_H
#define MIDGE_AUTH_PSK_H

#include <stddef.h>
#include <stdint.h>

#define PSK_MAX_KEY 512 /* bytes (1024 hex digits) */

struct psk_db;

/* Reads and parses a PSK file (refcount 1). NULL with "path:line: why". */
struct psk_db *psk_load(const char *path, char *err, size_t errlen);
/* The same from memory; file names it in messages. */
struct psk_db *psk_parse(const char *text, size_t len, const char *file, char *err,
			 size_t errlen);
struct psk_db *psk_ref(struct psk_db *db);
/* psk_unref(NULL) does nothing. */
void psk_unref(struct psk_db *db);
size_t psk_count(const struct psk_db *db);

/* The key of identity[0..len) into key (room for PSK_MAX_KEY bytes).
 * Returns its length, or -1 when the identity is unknown. */
long psk_lookup(const struct psk_db *db, const char *identity, size_t len, uint8_t *key);

#endif
