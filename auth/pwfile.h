/*
 * pwfile.h - the line format Mosquitto uses for password_file and
 * psk_file: "name:secret" per line, blanks around each part ignored,
 * blank lines and lines starting with '#' skipped. One reader for both
 * files, bounded in file size, line length and name length.
 */
#ifndef MIDGE_AUTH_PWFILE_H
#define MIDGE_AUTH_PWFILE_H

#include <stddef.h>
#include <stdint.h>

#define PWFILE_MAX_BYTES (64u << 20) /* a larger file is refused */
#define PWFILE_MAX_NAME 65535u      /* an MQTT string */
#define PWFILE_MAX_SECRET 4096u     /* a hash or a hex key is far shorter */

/*
 * The next line of text[0..len) from *pos on (without its newline), and
 * *pos past it. Returns 0 at the end of the text, else 1 with the line in
 * *line, *n.
 */
int pwfile_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n);

/*
 * Cuts a line into name and secret, blanks around each trimmed. Returns 0
 * for a blank or comment line, 1 for name:secret (either may be empty),
 * -1 when there is no ':'.
 */
int pwfile_split(const char *line, size_t n, const char **name, size_t *name_len,
		 const char **secret, size_t *secret_len);

/* Called for each entry: name[0..name_len) and secret[0..secret_len),
 * neither empty nor NUL-terminated, valid during the call. Return 0 to go
 * on, or -1 after writing why into err (the reader prefixes "file:line: "). */
typedef int (*pwfile_entry_cb)(void *ctx, const char *name, size_t name_len, const char *secret,
			       size_t secret_len, char *err, size_t errlen);

/*
 * Cuts text[0..len) into entries. file names the text in messages.
 * Returns the number of entries, or -1 with "file:line: why" in err: a
 * line without ':', an empty name or secret, a NUL byte, a part over its
 * bound, or whatever the callback refused.
 */
long pwfile_parse(const char *text, size_t len, const char *file, pwfile_entry_cb cb, void *ctx,
		  char *err, size_t errlen);

/*
 * Reads a whole file (at most PWFILE_MAX_BYTES) into *out (malloc'd,
 * NUL-terminated, *len bytes without the NUL). Returns 0, or -1 with
 * "what: path: why" in err. what is the configuration key, for messages.
 */
int pwfile_read(const char *what, const char *path, char **out, size_t *len, char *err,
		size_t errlen);

/*
 * A table of the names of a file's n entries, by open addressing: entry
 * i's name is what name_of(ctx, i, &len) returns. Built once; lookups
 * cannot add to it, so a client's user name only probes.
 */
typedef const char *(*pwfile_name_fn)(const void *ctx, size_t i, size_t *len);
struct pwfile_index {
	uint32_t *slots; /* entry index + 1, 0 = empty */
	size_t nslots;   /* a power of two, at least twice the entries */
};
/* Returns 0; -1 on OOM; -2 when a name appears twice (*dup is the later
 * entry's index). */
int pwfile_index_build(struct pwfile_index *ix, size_t n, pwfile_name_fn name_of,
		       const void *ctx, size_t *dup);
/* The index of the entry named name[0..len), or -1. */
long pwfile_index_find(const struct pwfile_index *ix, const char *name, size_t len,
		       pwfile_name_fn name_of, const void *ctx);
void pwfile_index_free(struct pwfile_index *ix);

/* Reads path (pwfile_read) and hands its text to parse, then wipes and
 * frees the text. Returns what parse returned, NULL with err on failure. */
typedef void *(*pwfile_parse_fn)(const char *text, size_t len, const char *file, char *err,
				 size_t errlen);
void *pwfile_load(const char *what, const char *path, pwfile_parse_fn parse, char *err,
		  size_t errlen);

/* name[0..len) for a message: at most 64 bytes, control characters and
 * bytes over 0x7e as \xNN, into buf. Returns buf. */
const char *pwfile_printable(const char *name, size_t len, char *buf, size_t buflen);

/* Clears n bytes at p in a way the compiler cannot drop (passwords). */
void pwfile_wipe(void *p, size_t n);

#endif
