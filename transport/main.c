/*
 * main.c - the midge daemon: Mosquitto's command line over libmidge.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/passwd_tool.h"
#include "midge.h"
#include "transport/broker.h"

static void usage(FILE *out)
{
	fprintf(out,
		"midge %s - an MQTT 3.1/3.1.1/5.0 broker\n"
		"usage: midge [-c config_file] [-d] [-p port] [-v] [-h] [--version]\n"
		"       midge --test-config -c config_file\n"
		"       midge passwd ...  manage a password file (mosquitto_passwd's flags; "
		"midge passwd -h)\n"
		"  -c FILE   read the configuration from FILE (Mosquitto syntax)\n"
		"  -d        run in the background\n"
		"  -p PORT   listen on PORT on localhost only, may repeat; ignored when\n"
		"            the configuration file defines listeners (as in Mosquitto 2)\n"
		"  -v        verbose: log everything to stderr\n"
		"  -h        this help\n"
		"  --version print the versions of midge and of its libraries\n"
		"  --test-config\n"
		"            check the configuration (-c) and the files it names, then exit:\n"
		"            0 valid, 1 not (each error names its file and line, or the file at fault)\n"
		"Without -c or -p midge listens on localhost port 1883.\n"
		"See midge(8) and midge.conf(5) (docs/configuration.md) for every key.\n",
		midge_version());
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	int ports[16];
	int n_ports = 0;
	bool daemonize = false, verbose = false, test_config = false;
	int rc = 1;

	/* glibc gives a thread's freed heap top back to the kernel once it
	 * passes 128 KiB. libnats allocates each incoming NATS message on its
	 * reader thread and frees it on its delivery thread: with bundles of
	 * up to 64 KiB that top passed the mark many times a second, and a
	 * receiving cluster node spent a tenth of its CPU in madvise and the
	 * page faults that follow (docs/cluster.md, "Threads"). Keeping up to
	 * 8 MiB, and serving messages up to 1 MiB from the heap instead of a
	 * mapping each, ends that for a bounded amount of memory. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if (argc > 1 && strcmp(argv[1], "passwd") == 0)
		return passwd_tool_main(argc - 1, argv + 1);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config-file") == 0) {
			if (++i >= argc)
				goto bad;
			config = argv[i];
		} else if (strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0) {
			char *end;
			long p;
			if (++i >= argc)
				goto bad;
			p = strtol(argv[i], &end, 10);
			if (*end || p < 0 || p > 65535 || n_ports >= 16) {
				fprintf(stderr, "midge: bad port '%s'\n", argv[i]);
				return 1;
			}
			ports[n_ports++] = (int)p;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--daemon") == 0) {
			daemonize = true;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			broker_print_versions(stdout);
			return 0;
		} else if (strcmp(a, "--test-config") == 0) {
			test_config = true;
		} else {
			fprintf(stderr, "midge: unknown option '%s'\n", a);
			goto bad;
		}
	}

	if (test_config && !config) {
		fprintf(stderr, "midge: --test-config needs -c FILE\n");
		goto bad;
	}
	struct midge *m = midge_new();
	if (!m) {
		fprintf(stderr, "midge: out of memory\n");
		return 1;
	}
	broker_set_verbose(m, verbose);
	if (config && midge_config_load(m, config) < 0)
		goto out;
	/*
	 * -p as Mosquitto 2 documents it: the ports are bound to the loopback
	 * interface only, and IGNORED when the configuration file defines a
	 * listener. Local-only listeners take anonymous clients unless the
	 * file said allow_anonymous false (Mosquitto would let them in; midge
	 * never widens what the file restricts).
	 */
	bool file_listeners = config && broker_listener_count(m) > 0;
	if (file_listeners && n_ports > 0)
		fprintf(stderr, "midge: -p ignored: %s defines listeners (as in Mosquitto 2)\n", config);
	for (int i = 0; i < n_ports && !file_listeners; i++)
		if (midge_listen(m, "localhost", (uint16_t)ports[i], NULL, NULL) < 0)
			goto out;
	if (n_ports > 0 && !file_listeners && !broker_allow_anonymous_set(m))
		midge_config_set(m, "allow_anonymous", "true");
	if (test_config) {
		/* nginx -t: the file was read (file:line on error above); now the
		 * files it names, as start-up would load them. Nothing is bound. */
		rc = broker_preflight(m) == 0 ? 0 : 1;
		goto out;
	}
	/* Keeps the working directory: relative certfile paths still work. */
	if (daemonize && daemon(1, 0) != 0) {
		perror("midge: daemon");
		goto out;
	}
	rc = midge_run(m) == 0 ? 0 : 1;
out:
	if (test_config)
		fprintf(rc == 0 ? stdout : stderr, "midge: the configuration file %s is %s\n", config,
			rc == 0 ? "valid" : "not valid");
	midge_free(m);
	return rc;
bad:
	usage(stderr);
	return 1;
}
