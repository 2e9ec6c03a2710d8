/*
 * Copyright (C) Data Loom
 */


/*
 * Runs a fuzz target over files, without libFuzzer: the normal test run
 * replays the checked-in corpus with it, under any compiler.
 *
 *   replay FILE|DIRECTORY ...
 */


#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path);


int
main(int argc, char **argv)
{
    int             i, n;
    char            path[4096];
    DIR            *dir;
    struct stat     st;
    struct dirent  *de;

    n = 0;

    for (i = 1; i < argc; i++) {

        if (stat(argv[i], &st) == -1) {
            perror(argv[i]);
            return 1;
        }

        if (!S_ISDIR(st.st_mode)) {
            n += replay_file(argv[i]);
            continue;
        }

        dir = opendir(argv[i]);
        if (dir == NULL) {
            perror(argv[i]);
            return 1;
        }

        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.') {
                continue;
            }

            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            n += replay_file(path);
        }

        closedir(dir);
    }

    printf("replayed %d inputs\n", n);

    return 0;
}


static int
replay_file(const char *path)
{
    long     len;
    FILE    *f;
    uint8_t *buf;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }

    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);

    buf = malloc(len ? len : 1);
    if (buf == NULL || fread(buf, 1, len, f) != (size_t) len) {
        perror(path);
        exit(1);
    }

    fclose(f);

    LLVMFuzzerTestOneInput(buf, len);
    free(buf);

    return 1;
}
