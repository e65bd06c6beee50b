/*
 * replay.c - a plain main() for fuzz harnesses in builds without libFuzzer:
 * runs LLVMFuzzerTestOneInput once over every file named on the command
 * line, and over every regular file of every directory named (not
 * recursively). A harness signals a bug by crashing or aborting, so this
 * driver only counts: it prints "replayed N inputs" and exits 0, or 2 when
 * an argument cannot be read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;
	size_t got;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return -1;
	}
	/* Exactly len bytes (at least one for malloc), so that ASan catches a
	 * harness reading past the input. */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf) {
		fclose(f);
		return -1;
	}
	got = fread(buf, 1, (size_t)len, f);
	fclose(f);
	if (got != (size_t)len) {
		free(buf);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	return 0;
}

static int replay_dir(const char *dir, unsigned long *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	struct stat st;
	int rc = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (replay_file(path) != 0) {
			fprintf(stderr, "cannot read %s\n", path);
			rc = -1;
			continue;
		}
		(*count)++;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned long count = 0;
	struct stat st;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') /* libFuzzer flags: meaningless here */
			continue;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "cannot stat %s\n", argv[i]);
			status = 2;
		} else if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &count) != 0)
				status = 2;
		} else if (replay_file(argv[i]) != 0) {
			fprintf(stderr, "cannot read %s\n", argv[i]);
			status = 2;
		} else {
			count++;
		}
	}
	printf("replayed %lu inputs\n", count);
	return status;
}
