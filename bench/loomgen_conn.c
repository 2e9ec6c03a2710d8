/*
 * Copyright (C) Data Loom
 */


/*
 * The connection state machine: connect, upgrade request, open, closing,
 * closed, with retries before a connection is ready; reading and writing
 * on non-blocking sockets registered with the loop's epoll, and the
 * answers to control frames.
 */

#include "loomgen.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>


static void
lg_set_events(lg_loop_t *lp, lg_conn_t *c, uint32_t events)
{
    struct epoll_event  ev;

    if (c->events == events || c->fd < 0) {
        return;
    }

    ev.events = events;
    ev.data.ptr = c;

    if (epoll_ctl(lp->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
        lg_log("epoll_ctl: %s", strerror(errno));
        return;
    }

    c->events = events;
}


/* room for len more bytes at the end of the output buffer, or NULL */

u_char *
lg_wspace(lg_conn_t *c, size_t len)
{
    if (c->wcap - c->wlen >= len) {
        return c->wbuf + c->wlen;
    }

    if (c->wpos == 0) {
        return NULL;
    }

    memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
    c->wlen -= c->wpos;
    c->wpos = 0;

    return (c->wcap - c->wlen >= len) ? c->wbuf + c->wlen : NULL;
}


static void
lg_flush(lg_loop_t *lp, lg_conn_t *c)
{
    ssize_t  n;

    while (c->wpos < c->wlen) {
        n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos,
                 MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            c->wpos += (uint32_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno == EAGAIN) {
            lg_set_events(lp, c, EPOLLIN | EPOLLOUT);
            return;
        }

        lg_conn_fail(lp, c, strerror(errno));
        return;
    }

    c->wpos = 0;
    c->wlen = 0;

    if (c->state != LG_C_CONNECTING) {
        lg_set_events(lp, c, EPOLLIN);
    }
}


void
lg_flush_all(lg_loop_t *lp)
{
    uint32_t    i;
    lg_conn_t  *c;

    for (i = 0; i < lp->ndirty; i++) {
        c = lp->dirty[i];
        c->dirty = 0;

        if (c->fd >= 0 && c->state != LG_C_CONNECTING) {
            lg_flush(lp, c);
        }
    }

    lp->ndirty = 0;
}


static void
lg_count_close(lg_loop_t *lp, unsigned code)
{
    uint32_t  i;

    for (i = 0; i < lp->st.ncodes; i++) {
        if (lp->st.codes[i].code == code) {
            lp->st.codes[i].count++;
            return;
        }
    }

    if (lp->st.ncodes < LG_MAX_CODES) {
        lp->st.codes[lp->st.ncodes].code = code;
        lp->st.codes[lp->st.ncodes].count = 1;
        lp->st.ncodes++;
    }
}


void
lg_on_control(lg_loop_t *lp, lg_conn_t *c, int op, const u_char *p,
    size_t len)
{
    unsigned  code;
    char      why[160];

    switch (op) {

    case LG_OP_PING:
        lp->st.pings++;

        if (!c->close_sent) {
            (void) lg_send_frame(lp, c, LG_OP_PONG, p, len);
        }

        return;

    case LG_OP_PONG:
        if (c->role == LG_R_IDLE && !c->ready) {
            lg_conn_ready(lp, c);
        }

        return;

    default: /* LG_OP_CLOSE */
        break;
    }

    code = len >= 2 ? (unsigned) p[0] << 8 | p[1] : 1005;

    if (c->close_sent) {
        /* the answer to ours: the server closes the TCP connection */
        c->state = LG_C_CLOSING;
        lp->st.closed++;
        return;
    }

    lg_count_close(lp, code);

    snprintf(why, sizeof(why), "server closed with %u %.*s", code,
             (int) lg_min(len > 2 ? len - 2 : 0, 120), (const char *) p + 2);

    if (c->ready) {
        if (atomic_fetch_add(&lg_sh.printed, 1) < LG_PRINT_ERRORS) {
            lg_log("connection %s #%u: %s",
                   c->role == LG_R_SUB ? "subscriber"
                   : c->role == LG_R_PUB ? "publisher" : "other",
                   c->index, why);
        }

        lg_conn_gone(lp, c);
        lg_send_close(lp, c, len >= 2 ? code : 0);
        c->state = LG_C_CLOSING;
        return;
    }

    lg_send_close(lp, c, len >= 2 ? code : 0);
    lg_conn_fail(lp, c, why);
}


static void
lg_on_read(lg_loop_t *lp, lg_conn_t *c)
{
    u_char   *b, *nb;
    size_t    have, used, rest;
    ssize_t   n;

    b = lp->rbuf;
    have = c->clen;

    if (have) {
        memcpy(b, c->carry, have);
    }

    n = recv(c->fd, b + have, LG_READ_MAX, 0);

    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        lg_conn_fail(lp, c, strerror(errno));
        return;
    }

    if (n == 0) {
        lg_conn_fail(lp, c, "connection closed by the server");
        return;
    }

    lp->now_read = lg_now();
    have += (size_t) n;
    used = 0;

    if (c->state == LG_C_HANDSHAKE) {
        used = lg_on_handshake(lp, c, b, have);

        if (c->fd < 0) {
            return;
        }
    }

    if (c->state != LG_C_HANDSHAKE) {
        used += lg_on_frames(lp, c, b + used, have - used);

        if (c->fd < 0) {
            return;
        }
    }

    /* keep a partial frame (or a partial HTTP response) for later */

    rest = have - used;

    if (rest > c->ccap) {
        nb = realloc(c->carry, lg_max(rest, 4096));
        if (nb == NULL) {
            lg_conn_fail(lp, c, "out of memory");
            return;
        }

        c->carry = nb;
        c->ccap = (uint32_t) lg_max(rest, 4096);
    }

    if (rest) {
        memmove(c->carry, b + used, rest);
    }

    c->clen = (uint32_t) rest;
}


/* connections */

static void
lg_conn_connected(lg_loop_t *lp, lg_conn_t *c)
{
    int        err, len;
    u_char     raw[16];
    uint64_t   r;
    socklen_t  sl;

    err = 0;
    sl = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1) {
        err = errno;
    }

    if (err) {
        lg_conn_fail(lp, c, strerror(err));
        return;
    }

    r = lg_random(lp);
    memcpy(raw, &r, 8);
    r = lg_random(lp);
    memcpy(raw + 8, &r, 8);
    lg_base64(raw, 16, c->key);

    len = snprintf((char *) c->wbuf, c->wcap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n",
                   lg_conf.path, lg_conf.host_header, c->key);

    c->wpos = 0;
    c->wlen = (uint32_t) len;
    c->state = LG_C_HANDSHAKE;

    lg_set_events(lp, c, EPOLLIN);
    lg_dirty(lp, c);
}


void
lg_conn_start(lg_loop_t *lp, lg_conn_t *c)
{
    int                 fd, one;
    struct epoll_event  ev;

    c->attempts++;
    c->started = lp->now;
    c->wpos = 0;
    c->wlen = 0;
    c->clen = 0;
    c->flen = 0;
    c->frag_op = 0;
    c->close_sent = 0;
    lp->pending++;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        c->fd = -1;
        c->state = LG_C_CONNECTING;
        lg_conn_fail(lp, c, strerror(errno));
        return;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c->fd = fd;
    lp->nfds++;
    c->state = LG_C_CONNECTING;
    c->events = EPOLLOUT;

    ev.events = EPOLLOUT;
    ev.data.ptr = c;

    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        lg_conn_fail(lp, c, strerror(errno));
        return;
    }

    if (connect(fd, (struct sockaddr *) &lg_conf.addr, sizeof(lg_conf.addr))
        == 0)
    {
        lg_conn_connected(lp, c);
        return;
    }

    if (errno != EINPROGRESS) {
        lg_conn_fail(lp, c, strerror(errno));
    }
}


void
lg_conn_close_fd(lg_loop_t *lp, lg_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        lp->nfds--;
    }

    if (c->state == LG_C_OPEN || c->state == LG_C_CLOSING) {
        lp->open--;
    }

    c->state = LG_C_CLOSED;
    c->events = 0;
    c->clen = 0;
}


void
lg_conn_ready(lg_loop_t *lp, lg_conn_t *c)
{
    c->ready = 1;
    lp->pending--;
    lp->settled++;
    lp->st.ready++;

    if (c->role == LG_R_SUB) {
        lp->subs_live[c->topic]++;
    }
}


/* a connection that was ready is gone: what it still owed is lost */

void
lg_conn_gone(lg_loop_t *lp, lg_conn_t *c)
{
    if (c->dead || !c->ready) {
        return;
    }

    c->dead = 1;

    switch (c->role) {

    case LG_R_SUB:
        lp->subs_live[c->topic]--;
        lp->dead_delivered += c->delivered;

        if (lp->phase == LG_PH_RUN || lp->phase == LG_PH_DRAIN) {
            lp->st.dead_subs++;
        }

        break;

    case LG_R_PUB:
        lp->dead_pending += c->seq - c->acks;

        if (lp->phase == LG_PH_RUN || lp->phase == LG_PH_DRAIN) {
            lp->st.dead_pubs++;
        }

        break;

    default:
        break;
    }
}


/*
 * A failure: before the connection is ready it is retried a few times;
 * after, it is gone for good (a disconnect unless we were closing).
 */

void
lg_conn_fail(lg_loop_t *lp, lg_conn_t *c, const char *why)
{
    int  closing;

    if (c->state == LG_C_CLOSED || c->state == LG_C_RETRY) {
        return;
    }

    closing = c->close_sent || c->state == LG_C_CLOSING;

    lg_conn_close_fd(lp, c);

    if (c->ready) {
        if (!closing) {
            lp->st.disconnects++;

            if (why && atomic_fetch_add(&lg_sh.printed, 1) < LG_PRINT_ERRORS) {
                lg_log("connection lost: %s", why);
            }
        }

        lg_conn_gone(lp, c);
        return;
    }

    if (lp->phase == LG_PH_CLOSE) {
        return;
    }

    lp->st.connect_failures++;
    lp->pending--;

    if (c->attempts <= lg_conf.retries && !atomic_load(&lg_sh.stop)) {
        c->state = LG_C_RETRY;
        c->started = lp->now + LG_RETRY_NS;
        return;
    }

    if (why && atomic_fetch_add(&lg_sh.printed, 1) < LG_PRINT_ERRORS) {
        lg_log("connection failed: %s", why);
    }

    lp->st.failed++;
    lp->settled++;

    if (c->role == LG_R_CTRL) {
        atomic_store(&lg_sh.fatal, 1);
        atomic_store(&lg_sh.stop, 1);
    }
}


void
lg_on_event(lg_loop_t *lp, lg_conn_t *c, uint32_t events)
{
    if (c->fd < 0) {
        return;
    }

    if (c->state == LG_C_CONNECTING) {
        lg_conn_connected(lp, c);
        return;
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        lg_on_read(lp, c);

        if (c->fd < 0) {
            return;
        }
    }

    if (events & EPOLLOUT) {
        lg_dirty(lp, c);
    }
}
