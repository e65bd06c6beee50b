/*
 * daemon.c - what a daemon does beyond serving: the pid file and dropping
 * root privileges to `user` after binding. (-d, detaching, is main.c's
 * daemon(3) call, before the loop starts.)
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "transport/broker.h"
#include "transport/log.h"

int daemon_write_pid(struct midge *m)
{
	if (!m->conf.pid_file)
		return 0;
	FILE *f = fopen(m->conf.pid_file, "w");
	if (!f) {
		log_err("pid_file %s: %s", m->conf.pid_file, strerror(errno));
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

/* After binding: drop root privileges to `user`, as Mosquitto does. */
int daemon_drop_privileges(struct midge *m)
{
	if (!m->conf.user)
		return 0;
	if (getuid() != 0) {
		log_warn("user %s ignored: not running as root", m->conf.user);
		return 0;
	}
	struct passwd *pw = getpwnam(m->conf.user);
	if (!pw) {
		log_err("user %s does not exist", m->conf.user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		log_err("cannot become user %s: %s", m->conf.user, strerror(errno));
		return -1;
	}
	log_notice("running as user %s", m->conf.user);
	return 0;
}

