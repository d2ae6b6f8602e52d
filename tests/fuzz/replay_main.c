/* replay_main.c - runs a libFuzzer target over every file of a corpus directory, no libFuzzer needed. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage: fuzz_replay_<target> DIR|FILE...
 *
 * Each regular file is read into a heap buffer of exactly its size (so an
 * over-read is a heap overflow the sanitizers see, as under libFuzzer) and
 * handed to LLVMFuzzerTestOneInput() once, in name order so runs compare.
 * The name is printed before the input runs: when a check traps or a
 * sanitizer aborts, the last name printed is the reproducer.
 * Exit status: 0 when every input ran, 1 on an I/O error or an empty corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf;
        long size;

        if (!f) {
                fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
                fprintf(stderr, "fuzz_replay: %s: cannot tell its size\n", path);
                fclose(f);
                return -1;
        }
        /* malloc(0) may return NULL; one spare byte the input never sees. */
        buf = malloc(size ? (size_t)size : 1);
        if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
                fprintf(stderr, "fuzz_replay: %s: read failed\n", path);
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        printf("fuzz_replay: %s (%ld bytes)\n", path, size);
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, (size_t)size);
        free(buf);
        return 0;
}

static int by_name(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* @return inputs replayed, or -1 on an I/O error. */
static long replay_dir(const char *dir) {
        struct dirent *de;
        char **names = NULL, path[4096];
        size_t n = 0, cap = 0, i;
        long done = 0;
        DIR *d = opendir(dir);

        if (!d) {
                fprintf(stderr, "fuzz_replay: %s: %s\n", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        char **grown = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

                        if (!grown) {
                                done = -1;
                                break;
                        }
                        names = grown;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        done = -1;
                        break;
                }
                n++;
        }
        closedir(d);
        if (done == 0)
                qsort(names, n, sizeof(*names), by_name);
        for (i = 0; i < n && done >= 0; i++) {
                struct stat st;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                if (stat(path, &st) || !S_ISREG(st.st_mode))
                        continue;
                done = replay_file(path) ? -1 : done + 1;
        }
        for (i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return done;
}

int main(int argc, char **argv) {
        long total = 0;
        int i;

        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
                return 2;
        }
        for (i = 1; i < argc; i++) {
                struct stat st;
                long n;

                if (stat(argv[i], &st)) {
                        fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]) ? -1 : 1;
                if (n < 0)
                        return 1;
                total += n;
        }
        printf("fuzz_replay: %ld inputs, no failure\n", total);
        if (total == 0) {
                fprintf(stderr, "fuzz_replay: no input found: an empty corpus tests nothing\n");
                return 1;
        }
        return 0;
}
