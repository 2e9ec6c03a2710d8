/*
 * Copyright (C) Data Loom
 */


/*
 * refcast: a bare reference broadcaster for the fan-out benchmark and the
 * snapshot burst.
 *
 *   refcast --port PORT [--host ADDR] [--workers N]
 *
 * It does what the broker does on the fan-out path and nothing else: no
 * JSON parsing, no Redis, no schema.  Like nginx, it is N worker
 * processes (2 by default, as the benchmark's nginx), each with its own
 * listening socket on the port (SO_REUSEPORT, as nginx's "listen ...
 * reuseport") or, with --shared, all on one (EPOLLEXCLUSIVE, no accept
 * mutex: nginx's defaults), accepting one connection per wake-up (nginx's
 * multi_accept off).  A publish reaches the subscribers of its own worker
 * directly and those of the other workers through a unix socket pair per
 * pair of workers, one record per sibling, framed there once (as each
 * nginx worker frames a delivery once when Redis hands it over).  Every
 * frame queued for a connection during one pass of the event loop leaves
 * in one writev().
 *
 * This file is a worker: its event loop, connections and output.  The
 * master (refcast_master.c) sets up the sockets, starts the workers,
 * forwards SIGTERM and SIGINT to them, and each worker prints its
 * counters to stderr when it exits; refcast_proto.c is what they say.
 */

#include "refcast.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>


#define RC_MAX_EVENTS        512


rc_stats_t               rc_stats;
rc_conn_t              **rc_peers;
uint32_t                 rc_npeers;

static int               rc_ep;
int                      rc_worker;
uint64_t                 rc_rng;
static u_char           *rc_rbuf;
static rc_conn_t       **rc_dirty;
static uint32_t          rc_ndirty;
static uint32_t          rc_dirty_cap;
static rc_conn_t        *rc_dead;        /* closed during this pass */
volatile sig_atomic_t    rc_quit;


rc_buf_t *
rc_buf_alloc(size_t len)
{
    rc_buf_t  *b;

    b = malloc(sizeof(rc_buf_t) + len);
    if (b == NULL) {
        return NULL;
    }

    b->refs = 0;
    b->len = (uint32_t) len;

    return b;
}


static void
rc_buf_release(rc_buf_t *b)
{
    if (--b->refs == 0) {
        free(b);
    }
}


static void
rc_random_sender(char *dst)
{
    int                 i;
    uint64_t            r;
    static const char   hex[] = "0123456789abcdef";

    /* a version 4 UUID in form; xorshift64*, not for secrets */

    for (i = 0; i < RC_SENDER_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            dst[i] = '-';
            continue;
        }

        rc_rng ^= rc_rng >> 12;
        rc_rng ^= rc_rng << 25;
        rc_rng ^= rc_rng >> 27;
        r = rc_rng * 0x2545F4914F6CDD1DULL;

        dst[i] = hex[(r >> 32) & 0xf];
    }

    dst[14] = '4';
    dst[RC_SENDER_LEN] = '\0';
}


static void
rc_mark_dirty(rc_conn_t *c)
{
    rc_conn_t  **d;

    if (c->dirty) {
        return;
    }

    if (rc_ndirty == rc_dirty_cap) {
        d = realloc(rc_dirty, (rc_dirty_cap * 2 + 64) * sizeof(rc_conn_t *));
        if (d == NULL) {
            rc_close(c);
            return;
        }

        rc_dirty = d;
        rc_dirty_cap = rc_dirty_cap * 2 + 64;
    }

    c->dirty = 1;
    rc_dirty[rc_ndirty++] = c;
}


/*
 * Queues a buffer, which leaves with the rest in the pass's writev(); a
 * buffer nobody took (refs still 0 afterwards) is the caller's to free.
 */

void
rc_enqueue(rc_conn_t *c, rc_buf_t *b)
{
    uint32_t    i, cap;
    rc_buf_t  **q;

    if (c->dead || c->close_after) {
        return;
    }

    if (c->qbytes + b->len > RC_MAX_QUEUED) {
        rc_stats.slow++;
        rc_close(c);
        return;
    }

    if (c->qlen == c->qcap) {
        cap = c->qcap ? c->qcap * 2 : 16;

        q = malloc(cap * sizeof(rc_buf_t *));
        if (q == NULL) {
            rc_close(c);
            return;
        }

        for (i = 0; i < c->qlen; i++) {
            q[i] = c->q[(c->qhead + i) % c->qcap];
        }

        free(c->q);
        c->q = q;
        c->qhead = 0;
        c->qcap = cap;
    }

    c->q[(c->qhead + c->qlen) % c->qcap] = b;
    c->qlen++;
    c->qbytes += b->len;
    b->refs++;

    rc_mark_dirty(c);
}


void
rc_send_raw(rc_conn_t *c, const u_char *data, size_t len)
{
    rc_buf_t  *b;

    b = rc_buf_alloc(len);
    if (b == NULL) {
        rc_close(c);
        return;
    }

    memcpy(b->data, data, len);
    rc_enqueue(c, b);

    if (b->refs == 0) {
        free(b);
    }
}


static void
rc_set_out(rc_conn_t *c, int on)
{
    struct epoll_event  ev;

    if (c->want_out == on) {
        return;
    }

    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;

    if (epoll_ctl(rc_ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
        c->want_out = (uint8_t) on;
    }
}


/* the connection's queue in one writev() (RC_MAX_IOV buffers at a time) */

static void
rc_flush(rc_conn_t *c)
{
    int           n;
    size_t        done, offered;
    ssize_t       w;
    uint32_t      i;
    rc_buf_t     *b;
    struct iovec  iov[RC_MAX_IOV];

    while (c->qlen) {
        n = (int) rc_min(c->qlen, RC_MAX_IOV);
        offered = 0;

        for (i = 0; i < (uint32_t) n; i++) {
            b = c->q[(c->qhead + i) % c->qcap];
            iov[i].iov_base = b->data;
            iov[i].iov_len = b->len;
            offered += b->len;
        }

        iov[0].iov_base = (u_char *) iov[0].iov_base + c->qoff;
        iov[0].iov_len -= c->qoff;
        offered -= c->qoff;

        w = writev(c->fd, iov, n);
        rc_stats.writes++;

        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno == EAGAIN) {
                rc_set_out(c, 1);
                return;
            }

            rc_close(c);
            return;
        }

        done = (size_t) w;
        c->qbytes -= done;

        while (done) {
            b = c->q[c->qhead];

            if (done < b->len - c->qoff) {
                c->qoff += (uint32_t) done;
                break;
            }

            done -= b->len - c->qoff;
            c->qoff = 0;
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
            rc_buf_release(b);
        }

        if ((size_t) w < offered) {
            /* the socket took less than offered: wait for room */
            rc_set_out(c, 1);
            return;
        }
    }

    rc_set_out(c, 0);

    if (c->close_after) {
        rc_close(c);
    }
}


void
rc_close(rc_conn_t *c)
{
    if (c->dead) {
        return;
    }

    c->dead = 1;
    rc_unsubscribe_all(c);

    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }

    /* freed after the pass: later events of this pass may name it */

    c->next_dead = rc_dead;
    rc_dead = c;
}


static void
rc_free_dead(void)
{
    rc_conn_t  *c;

    while (rc_dead) {
        c = rc_dead;
        rc_dead = c->next_dead;

        while (c->qlen) {
            rc_buf_release(c->q[c->qhead]);
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
        }

        free(c->q);
        free(c->carry);
        free(c->topics);
        free(c);
    }
}


static rc_conn_t *
rc_conn_add(int fd, int kind)
{
    rc_conn_t           *c;
    struct epoll_event   ev;

    c = calloc(1, sizeof(rc_conn_t));
    if (c == NULL) {
        close(fd);
        return NULL;
    }

    c->fd = fd;
    c->kind = (uint8_t) kind;
    rc_random_sender(c->sender);

    ev.events = EPOLLIN;
    ev.data.ptr = c;

    if (epoll_ctl(rc_ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        close(fd);
        free(c);
        return NULL;
    }

    return c;
}


static void
rc_accept(int lfd)
{
    int  fd, one;

    /* one connection per wake-up, as nginx with multi_accept off */

    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
        return;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (rc_conn_add(fd, RC_K_CLIENT) != NULL) {
        rc_stats.accepted++;
    }
}


static void
rc_read(rc_conn_t *c)
{
    u_char   *b, *nb;
    size_t    have, used, rest;
    ssize_t   n;

    b = rc_rbuf;
    have = c->clen;

    if (have) {
        memcpy(b, c->carry, have);
    }

    n = recv(c->fd, b + have, RC_RBUF_SIZE - have, 0);

    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            rc_close(c);
        }

        return;
    }

    if (n == 0) {
        rc_close(c);
        return;
    }

    have += (size_t) n;
    used = 0;

    if (c->kind == RC_K_PEER) {
        used = rc_on_records(c, b, have);

    } else {
        if (c->state == RC_S_HANDSHAKE) {
            used = rc_on_handshake(c, b, have);
        }

        if (!c->dead && c->state != RC_S_HANDSHAKE) {
            used += rc_on_frames(c, b + used, have - used);
        }
    }

    if (c->dead) {
        return;
    }

    rest = have - used;

    if (rest > RC_RBUF_SIZE / 2) {
        rc_close(c);
        return;
    }

    if (rest > c->ccap) {
        nb = realloc(c->carry, rest);
        if (nb == NULL) {
            rc_close(c);
            return;
        }

        c->carry = nb;
        c->ccap = (uint32_t) rest;
    }

    if (rest) {
        memmove(c->carry, b + used, rest);
    }

    c->clen = (uint32_t) rest;
}


void
rc_on_signal(int signo)
{
    if (signo != SIGCHLD) {
        rc_quit = 1;
    }
}


void
rc_worker_run(int lfd, int *links, uint32_t nlinks)
{
    int                  n, i;
    uint32_t             k;
    rc_conn_t           *c, listener;
    struct epoll_event   ev, events[RC_MAX_EVENTS];

    rc_ep = epoll_create1(EPOLL_CLOEXEC);
    rc_rbuf = malloc(RC_RBUF_SIZE);
    rc_peers = calloc(nlinks + 1, sizeof(rc_conn_t *));

    if (rc_ep == -1 || rc_rbuf == NULL || rc_peers == NULL) {
        fprintf(stderr, "refcast: worker %d: no memory or epoll\n",
                rc_worker);
        exit(2);
    }

    memset(&listener, 0, sizeof(listener));
    listener.fd = lfd;
    listener.kind = RC_K_LISTEN;

    ev.events = EPOLLIN | EPOLLEXCLUSIVE;   /* harmless when not shared */
    ev.data.ptr = &listener;

    if (epoll_ctl(rc_ep, EPOLL_CTL_ADD, lfd, &ev) == -1) {
        perror("refcast: epoll_ctl");
        exit(2);
    }

    for (k = 0; k < nlinks; k++) {
        c = rc_conn_add(links[k], RC_K_PEER);

        if (c == NULL) {
            perror("refcast: a sibling link");
            exit(2);
        }

        c->state = RC_S_OPEN;
        rc_peers[rc_npeers++] = c;
    }

    while (!rc_quit) {
        n = epoll_wait(rc_ep, events, RC_MAX_EVENTS, -1);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            perror("refcast: epoll_wait");
            exit(2);
        }

        /* read everything that is ready, then write what it queued */

        for (i = 0; i < n; i++) {
            c = events[i].data.ptr;

            if (c->kind == RC_K_LISTEN) {
                rc_accept(lfd);
                continue;
            }

            if (c->dead) {
                continue;
            }

            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                rc_read(c);
            }

            if (!c->dead && (events[i].events & EPOLLOUT)) {
                rc_mark_dirty(c);
            }
        }

        for (k = 0; k < rc_ndirty; k++) {
            c = rc_dirty[k];
            c->dirty = 0;

            if (!c->dead) {
                rc_flush(c);
            }
        }

        rc_ndirty = 0;
        rc_free_dead();
    }

    fprintf(stderr, "refcast: worker %d (pid %d): accepted %lu,"
            " subscribes %lu, publishes %lu, relayed %lu,"
            " deliveries %lu, frames %lu, writev %lu, slow closes %lu\n",
            rc_worker, (int) getpid(), (unsigned long) rc_stats.accepted,
            (unsigned long) rc_stats.subscribes,
            (unsigned long) rc_stats.publishes,
            (unsigned long) rc_stats.relayed,
            (unsigned long) rc_stats.deliveries,
            (unsigned long) rc_stats.frames,
            (unsigned long) rc_stats.writes, (unsigned long) rc_stats.slow);

    exit(0);
}
