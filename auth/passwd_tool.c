/*
 * passwd_tool.c - `midge passwd`, with mosquitto_passwd's flags:
 *
 *   midge passwd [-H hash] [-c | -D] FILE USER        (prompts twice, no echo)
 *   midge passwd [-H hash] [-c] -b FILE USER PASSWORD
 *   midge passwd -U FILE                               (plain text to hashes)
 *
 * The file is rewritten whole into a temporary file beside it, synced and
 * renamed over it, so a reader (a broker reloading) sees the old file or
 * the new one, never half of one. Comments and blank lines are kept.
 */
#include "auth/passwd_tool.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "auth/pwfile.h"

#define TOOL_MAX_PASSWORD 65535u

static void tool_usage(FILE *out)
{
	fprintf(out,
		"midge passwd - manage password files for midge (and Mosquitto)\n"
		"usage: midge passwd [-H argon2id|sha512-pbkdf2|sha512] [-I iterations] [-c | -D] "
		"FILE USER\n"
		"       midge passwd [-H ...] [-c] -b FILE USER PASSWORD\n"
		"       midge passwd -U FILE\n"
		" -b  batch mode: the password is on the command line\n"
		" -c  create a new file with this one user (overwrites FILE)\n"
		" -D  delete USER instead of setting a password\n"
		" -H  hash: argon2id (default, Mosquitto 2.1), sha512-pbkdf2 (Mosquitto 2.0), "
		"sha512 (1.x)\n"
		" -I  iterations for sha512-pbkdf2 (default %u)\n"
		" -U  hash every plain-text password of FILE (hashed ones are kept as they are)\n"
		"Without -b the password is read twice, without echo when stdin is a terminal.\n",
		PASSWD_PBKDF2_ITERATIONS);
}

/* ---- reading a password ------------------------------------------------- */

static struct termios tool_saved_tty;
static volatile sig_atomic_t tool_tty_changed;

static void tool_restore_tty(void)
{
	if (tool_tty_changed) {
		tcsetattr(STDIN_FILENO, TCSANOW, &tool_saved_tty);
		tool_tty_changed = 0;
	}
}

static void tool_on_signal(int sig)
{
	tool_restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from stdin into buf, prompt shown (on stderr) and echo off
 * when stdin is a terminal. Returns its length or -1. */
static long tool_read_line(const char *prompt, char *buf, size_t cap)
{
	bool tty = isatty(STDIN_FILENO);
	if (tty) {
		/* echo off before the prompt: whatever is typed after it is
		 * not shown */
		struct termios t;
		if (tcgetattr(STDIN_FILENO, &tool_saved_tty) == 0) {
			t = tool_saved_tty;
			t.c_lflag &= ~(tcflag_t)ECHO;
			t.c_lflag |= ECHONL;
			tool_tty_changed = 1;
			tcsetattr(STDIN_FILENO, TCSANOW, &t);
		}
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
	}
	char *got = fgets(buf, (int)cap, stdin);
	if (tty)
		tool_restore_tty();
	if (!got)
		return -1;
	size_t n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (n == cap - 1)
		return -1; /* longer than the bound */
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return (long)n;
}

/* Asks twice; the two must agree. Returns the length or -1 after saying
 * why. */
static long tool_get_password(char *pw, char *again, size_t cap)
{
	long a = tool_read_line("Password: ", pw, cap);
	if (a < 0) {
		fprintf(stderr, "Error: no password read (at most %u bytes).\n", TOOL_MAX_PASSWORD);
		return -1;
	}
	if (a == 0) {
		fprintf(stderr, "Error: Empty password.\n");
		return -1;
	}
	long b = tool_read_line("Reenter password: ", again, cap);
	if (b != a || memcmp(pw, again, (size_t)a) != 0) {
		fprintf(stderr, "Error: Passwords do not match.\n");
		return -1;
	}
	return a;
}

/* ---- the file -------------------------------------------------------------- */

static bool tool_user_valid(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > PWFILE_MAX_NAME) {
		fprintf(stderr, "Error: Username must be 1 to %u bytes long.\n", PWFILE_MAX_NAME);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (iscntrl((unsigned char)user[i])) {
			fprintf(stderr, "Error: Username must not contain control characters.\n");
			return false;
		}
	if (strchr(user, ':')) {
		fprintf(stderr, "Error: Username must not contain the ':' character.\n");
		return false;
	}
	if (user[0] == '#' || isspace((unsigned char)user[0]) ||
	    isspace((unsigned char)user[n - 1])) {
		fprintf(stderr, "Error: Username must not start with '#' or start or end with a "
				"blank.\n");
		return false;
	}
	return true;
}

struct tool {
	enum passwd_kind kind;
	unsigned iterations;
	FILE *out;
	const char *path;
	char tmp[PATH_MAX];
};

/* "user:hash\n" into the output. */
static int tool_write_entry(struct tool *t, const char *user, size_t user_len, const char *pw,
			    size_t pw_len)
{
	char hash[512];
	if (passwd_hash(t->kind, t->iterations, pw, pw_len, hash, sizeof(hash)) < 0) {
		fprintf(stderr, "Error: Unable to hash password.\n");
		return -1;
	}
	fprintf(t->out, "%.*s:%s\n", (int)user_len, user, hash);
	return 0;
}

/* A temporary file beside path, with path's mode (0600 for a new file). */
static int tool_open(struct tool *t, const char *path)
{
	struct stat st;
	mode_t mode = 0600;
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	int n = snprintf(t->tmp, sizeof(t->tmp), "%s.tmp-XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(t->tmp)) {
		fprintf(stderr, "Error: path too long: %s\n", path);
		return -1;
	}
	int fd = mkstemp(t->tmp);
	if (fd < 0) {
		fprintf(stderr, "Error: cannot create a file beside %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) < 0 || !(t->out = fdopen(fd, "w"))) {
		fprintf(stderr, "Error: %s: %s\n", t->tmp, strerror(errno));
		close(fd);
		unlink(t->tmp);
		return -1;
	}
	t->path = path;
	return 0;
}

/* Flushes, syncs and renames the temporary file over path; on failure
 * (ok false, or an error now) removes it. Returns 0 or 1 (exit status). */
static int tool_close(struct tool *t, bool ok)
{
	if (ok && (fflush(t->out) != 0 || fsync(fileno(t->out)) != 0)) {
		fprintf(stderr, "Error: writing %s: %s\n", t->tmp, strerror(errno));
		ok = false;
	}
	if (fclose(t->out) != 0)
		ok = false;
	t->out = NULL;
	if (ok && rename(t->tmp, t->path) != 0) {
		fprintf(stderr, "Error: cannot replace %s: %s\n", t->path, strerror(errno));
		ok = false;
	}
	if (!ok)
		unlink(t->tmp);
	return ok ? 0 : 1;
}

enum tool_mode { MODE_SET, MODE_DELETE, MODE_UPGRADE };

/*
 * Copies the lines of text (the old file) into t->out, changing what the
 * mode asks: MODE_SET replaces user's hash (or appends it), MODE_DELETE
 * leaves user out, MODE_UPGRADE hashes plain-text passwords. Returns 0,
 * or -1 after saying why (a line that is not name:secret).
 */
static int tool_rewrite(struct tool *t, const char *text, size_t len, enum tool_mode mode,
			const char *user, const char *pw, size_t pw_len, bool *found)
{
	size_t pos = 0, ulen = user ? strlen(user) : 0, n, nlen, slen;
	unsigned long lineno = 0;
	const char *line, *name, *secret;
	while (pwfile_next_line(text, len, &pos, &line, &n)) {
		lineno++;
		int kind = pwfile_split(line, n, &name, &nlen, &secret, &slen);
		if (kind == 0) {
			fprintf(t->out, "%.*s\n", (int)n, line); /* kept as it is */
			continue;
		}
		if (kind < 0) {
			fprintf(stderr, "Error: %s:%lu: not name:password; nothing changed.\n", t->path,
				lineno);
			return -1;
		}
		bool me = user && nlen == ulen && memcmp(name, user, ulen) == 0;
		if (me)
			*found = true;
		if (mode == MODE_UPGRADE && !passwd_is_hash(secret, slen)) {
			if (tool_write_entry(t, name, nlen, secret, slen) < 0)
				return -1;
		} else if (me && mode == MODE_DELETE) {
			continue;
		} else if (me && mode == MODE_SET) {
			if (tool_write_entry(t, name, nlen, pw, pw_len) < 0)
				return -1;
		} else {
			fprintf(t->out, "%.*s\n", (int)n, line);
		}
	}
	if (mode == MODE_SET && !*found && tool_write_entry(t, user, ulen, pw, pw_len) < 0)
		return -1;
	return 0;
}

int passwd_tool_main(int argc, char **argv)
{
	struct tool t = {.kind = PASSWD_ARGON2ID};
	bool batch = false, create = false, del = false, upgrade = false;
	int i;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-b") == 0) {
			batch = true;
		} else if (strcmp(a, "-c") == 0) {
			create = true;
		} else if (strcmp(a, "-D") == 0) {
			del = true;
		} else if (strcmp(a, "-U") == 0) {
			upgrade = true;
		} else if (strcmp(a, "-H") == 0 && i + 1 < argc) {
			const char *h = argv[++i];
			if (strcmp(h, "argon2id") == 0 || strcmp(h, "argon2") == 0)
				t.kind = PASSWD_ARGON2ID;
			else if (strcmp(h, "sha512-pbkdf2") == 0)
				t.kind = PASSWD_PBKDF2_SHA512;
			else if (strcmp(h, "sha512") == 0)
				t.kind = PASSWD_SHA512;
			else {
				fprintf(stderr, "Error: Unknown hash type '%s'.\n", h);
				return 1;
			}
		} else if (strcmp(a, "-I") == 0 && i + 1 < argc) {
			char *end;
			unsigned long it = strtoul(argv[++i], &end, 10);
			if (*end || it == 0 || it > PASSWD_MAX_PBKDF2_ITERATIONS) {
				fprintf(stderr, "Error: Number of iterations must be 1..%u.\n",
					PASSWD_MAX_PBKDF2_ITERATIONS);
				return 1;
			}
			t.iterations = (unsigned)it;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			tool_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "Error: unknown option '%s'.\n", a);
			tool_usage(stderr);
			return 1;
		}
	}
	const char *conflict = create && del	  ? "-c and -D"
			       : create && upgrade ? "-c and -U"
			       : del && upgrade	   ? "-D and -U"
			       : batch && del	   ? "-b and -D"
			       : batch && upgrade  ? "-b and -U"
						   : NULL;
	if (conflict) {
		fprintf(stderr, "Error: %s cannot be used together.\n", conflict);
		return 1;
	}
	int want = upgrade ? 1 : batch ? 3 : 2;
	if (argc - i != want) {
		tool_usage(stderr);
		return 1;
	}
	const char *path = argv[i], *user = upgrade ? NULL : argv[i + 1];
	if (user && !tool_user_valid(user))
		return 1;

	char *pw = NULL, *again = NULL, *text = NULL;
	size_t pw_len = 0, text_len = 0;
	int rc = 1;
	bool found = false;
	if (!del && !upgrade) {
		if (batch) {
			pw_len = strlen(argv[i + 2]);
			if (pw_len == 0 || pw_len > TOOL_MAX_PASSWORD) {
				fprintf(stderr, "Error: the password must be 1 to %u bytes.\n",
					TOOL_MAX_PASSWORD);
				return 1;
			}
			pw = strdup(argv[i + 2]);
		} else {
			pw = malloc(TOOL_MAX_PASSWORD + 2);
			again = malloc(TOOL_MAX_PASSWORD + 2);
			signal(SIGINT, tool_on_signal);
			signal(SIGTERM, tool_on_signal);
			long n = pw && again ? tool_get_password(pw, again, TOOL_MAX_PASSWORD + 2) : -1;
			if (n < 0)
				goto out;
			pw_len = (size_t)n;
		}
		if (!pw) {
			fprintf(stderr, "Error: out of memory.\n");
			goto out;
		}
	}
	if (!create) {
		char err[600];
		if (pwfile_read("password file", path, &text, &text_len, err, sizeof(err)) < 0) {
			fprintf(stderr, "Error: %s\n", err);
			goto out;
		}
	}
	if (tool_open(&t, path) < 0)
		goto out;
	enum tool_mode mode = del ? MODE_DELETE : upgrade ? MODE_UPGRADE : MODE_SET;
	bool ok = tool_rewrite(&t, text ? text : "", text_len, mode, user, pw, pw_len, &found) == 0;
	if (ok && del && !found) {
		fprintf(stderr, "Warning: User %s not found in password file.\n", user);
		ok = false;
	}
	rc = tool_close(&t, ok);
	if (rc == 0 && mode == MODE_SET && !create)
		printf("%s password for user %s\n", found ? "Updating" : "Adding", user);
out:
	if (pw) {
		pwfile_wipe(pw, pw_len);
		free(pw);
	}
	if (again) {
		pwfile_wipe(again, TOOL_MAX_PASSWORD + 2);
		free(again);
	}
	if (text) {
		pwfile_wipe(text, text_len);
		free(text);
	}
	return rc;
}
