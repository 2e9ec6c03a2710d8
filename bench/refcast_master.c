/*
 * Copyright (C) Data Loom
 */


/*
 * The refcast master: the command line, the listening sockets and the
 * links between workers, all made before the workers start; then it
 * waits, and stops every worker when it is told to stop or one exits.
 */

#include "refcast.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


#define RC_MAX_WORKERS       64


static void
rc_usage(FILE *f)
{
    fprintf(f, "usage: refcast --port PORT [--host ADDR] [--workers N] "
               "[--shared]\n"
               "  --host ADDR     listen address (default 127.0.0.1)\n"
               "  --port PORT     listen port\n"
               "  --workers N     worker processes (default 2)\n"
               "  --shared        one listening socket for all workers\n"
               "                  (default: one each, SO_REUSEPORT)\n");
}


int
main(int argc, char **argv)
{
    int                  opt, one, status, w, i, j, pair[2], shared;
    int                  lfd[RC_MAX_WORKERS];
    int                  links[RC_MAX_WORKERS][RC_MAX_WORKERS];
    long                 port, workers;
    pid_t                pid[RC_MAX_WORKERS], p;
    uint32_t             n;
    sigset_t             mask, old;
    const char          *host;
    struct rlimit        rl;
    struct sigaction     sa;
    struct sockaddr_in   sin;
    static struct option  opts[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "workers", required_argument, NULL, 'w' },
        { "shared", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    host = "127.0.0.1";
    port = 0;
    workers = 2;
    shared = 0;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'w': workers = strtol(optarg, NULL, 10); break;
        case 's': shared = 1; break;
        case 'h': rc_usage(stdout); return 0;
        default: rc_usage(stderr); return 1;
        }
    }

    if (optind != argc || port <= 0 || port > 65535 || workers < 1
        || workers > RC_MAX_WORKERS)
    {
        rc_usage(stderr);
        return 1;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);

    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "refcast: invalid address \"%s\"\n", host);
        return 1;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    /*
     * A listening socket per worker in one SO_REUSEPORT group (the kernel
     * spreads connections over them by hash), or with --shared one
     * socket for all, as nginx's "listen" without "reuseport"; all bound
     * before the workers start, so none misses the first connections.
     */

    one = 1;

    for (i = 0; i < (shared ? 1 : workers); i++) {
        lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);

        if (lfd[i] == -1
            || setsockopt(lfd[i], SOL_SOCKET, SO_REUSEADDR, &one,
                          sizeof(one))
            || (!shared && setsockopt(lfd[i], SOL_SOCKET, SO_REUSEPORT, &one,
                                      sizeof(one)))
            || bind(lfd[i], (struct sockaddr *) &sin, sizeof(sin))
            || listen(lfd[i], 511))
        {
            perror("refcast: listen");
            return 1;
        }
    }

    /* a stream socket pair between every two workers */

    for (i = 0; i < workers; i++) {
        for (j = i + 1; j < workers; j++) {
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK
                                    | SOCK_CLOEXEC, 0, pair) == -1)
            {
                perror("refcast: socketpair");
                return 1;
            }

            links[i][j] = pair[0];
            links[j][i] = pair[1];
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = rc_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);

    for (i = 0; i < workers; i++) {
        p = fork();

        if (p == -1) {
            perror("refcast: fork");
            rc_quit = 1;
            break;
        }

        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            sigprocmask(SIG_SETMASK, &old, NULL);

            rc_worker = i;
            rc_rng = 0x9e3779b97f4a7c15ULL * (uint64_t) (i + 1);

            if (getrandom(&rc_rng, sizeof(rc_rng), 0) != sizeof(rc_rng)) {
                rc_rng ^= (uint64_t) getpid();
            }

            rc_rng |= 1;

            for (n = 0, j = 0; j < workers; j++) {
                if (j != i) {
                    links[i][n++] = links[i][j];
                }
            }

            for (j = 0; j < workers; j++) {
                for (w = 0; w < workers; w++) {
                    if (j != i && w != j) {
                        close(links[j][w]);
                    }
                }
            }

            if (!shared) {
                for (j = 0; j < workers; j++) {
                    if (j != i) {
                        close(lfd[j]);
                    }
                }
            }

            rc_worker_run(lfd[shared ? 0 : i], links[i], n);
        }

        pid[i] = p;
    }

    /* the master: waits for a signal or a worker's end, stops them all */

    n = (uint32_t) i;

    while (!rc_quit) {
        sigsuspend(&old);

        if (waitpid(-1, &status, WNOHANG) > 0) {
            fprintf(stderr, "refcast: a worker exited\n");
            break;
        }
    }

    for (i = 0; i < (int) n; i++) {
        kill(pid[i], SIGTERM);
    }

    while (wait(&status) > 0) {
        /* void */
    }

    return 0;
}
