/*
 * Copyright (C) Data Loom
 */


/*
 * The revision workloads (issue 9), a few connections in one thread:
 *
 *   --catch-up N    one topic keeping N revisions is given N publishes,
 *                   then one subscriber resumes it from revision 0 and
 *                   gets them from history: messages/s of the replay;
 *                   then 1,000 more publishes must follow live, in order
 *   --snapshots K   K connections subscribe with "snapshot": true at once
 *                   (one burst of K requests) while a publisher publishes
 *                   at --rate: the time to each answer, and each answer's
 *                   rev followed by rev + 1, rev + 2, ... with no gap
 *
 * All connections speak dataloom.v2.  The handshakes are made one after
 * another before anything is measured; then every socket is non-blocking
 * on one epoll.
 */


#include "loomgen.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>


#define LG_RP_LIVE       1000        /* publishes after a catch-up */
#define LG_RP_SEED       100         /* publishes before the snapshots */
#define LG_RP_LEAD_NS    (200 * LG_MS)   /* publishing before the burst */
#define LG_RP_TAIL_NS    (1000 * LG_MS)  /* after the last answer */
#define LG_RP_BURST_READ 8           /* subscribes written between reads */


typedef struct {
    int         fd;
    u_char     *buf;             /* input not parsed yet: [pos, len) */
    size_t      pos;
    size_t      len;
    size_t      cap;
    int         closed;

    uint64_t    sent_at;         /* the subscribe went out */
    uint64_t    answered;        /* 0: not yet */
    int         code;
    uint64_t    rev;             /* the answer's */
    uint64_t    replayed;
    int         recovered;
    int         resume;          /* since rev 0: deliveries from 1 */
    uint64_t    last;            /* the last revision delivered */
    uint64_t    delivered;
    uint64_t    gaps;            /* deliveries not last + 1 */
    uint64_t    early;           /* deliveries before the answer */
} lg_rp_conn_t;


typedef struct {
    int            ep;
    lg_rp_conn_t   ctrl;
    lg_rp_conn_t  *subs;
    uint32_t       nsubs;
    char           topic[128];
    char           epoch[128];
    const char    *pad;

    const char    *want;         /* the id of the answer awaited */
    u_char        *got;
    size_t         got_len;

    uint64_t       sent;         /* publishes */
    uint64_t       acked;
    uint64_t       errors;
    uint64_t       malformed;
} lg_rp_t;


static lg_rp_t  lg_rp;


static int
lg_rp_connect(lg_rp_conn_t *c)
{
    int      fd, one;
    char     req[1024], *end;
    ssize_t  n;
    size_t   got;

    memset(c, 0, sizeof(lg_rp_conn_t));
    c->cap = 64 * 1024;
    c->buf = malloc(c->cap);
    if (c->buf == NULL) {
        return -1;
    }

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        lg_log("socket: %s", strerror(errno));
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (connect(fd, (struct sockaddr *) &lg_conf.addr, sizeof(lg_conf.addr))
        == -1)
    {
        lg_log("connect: %s", strerror(errno));
        close(fd);
        return -1;
    }

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: dataloom.v2\r\n"
                 "%s%s"
                 "\r\n",
                 lg_conf.path, lg_conf.host_header,
                 lg_conf.header ? lg_conf.header : "",
                 lg_conf.header ? "\r\n" : "");

    if (write(fd, req, (size_t) n) != n) {
        lg_log("handshake: write failed");
        close(fd);
        return -1;
    }

    /* the response, and whatever follows it, into the buffer */

    got = 0;
    end = NULL;

    while (end == NULL) {
        n = read(fd, c->buf + got, c->cap - got - 1);
        if (n <= 0) {
            lg_log("handshake: no response");
            close(fd);
            return -1;
        }

        got += (size_t) n;
        c->buf[got] = '\0';
        end = strstr((char *) c->buf, "\r\n\r\n");

        if (end == NULL && got > LG_MAX_HTTP) {
            break;
        }
    }

    if (end == NULL || strncmp((char *) c->buf, "HTTP/1.1 101", 12) != 0) {
        lg_print_problem("handshake refused", c->buf, got);
        close(fd);
        return -1;
    }

    c->pos = (size_t) (end + 4 - (char *) c->buf);
    c->len = got;
    c->fd = fd;

    (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    return 0;
}


/* a masked frame (the key is 0: the payload goes as it is), all of it */

static int
lg_rp_send_frame(lg_rp_conn_t *c, int op, const char *p, size_t len)
{
    u_char         h[14];
    size_t         hl, off;
    ssize_t        n;
    struct iovec   iov[2];
    struct pollfd  pfd;

    h[0] = (u_char) (0x80 | op);

    if (len < 126) {
        h[1] = (u_char) (0x80 | len);
        hl = 2;

    } else {
        h[1] = 0x80 | 126;
        h[2] = (u_char) (len >> 8);
        h[3] = (u_char) len;
        hl = 4;
    }

    memset(h + hl, 0, 4);
    hl += 4;

    off = 0;

    while (off < hl + len) {
        if (off < hl) {
            iov[0].iov_base = h + off;
            iov[0].iov_len = hl - off;
            iov[1].iov_base = (void *) p;
            iov[1].iov_len = len;
            n = writev(c->fd, iov, 2);

        } else {
            n = write(c->fd, p + (off - hl), len - (off - hl));
        }

        if (n >= 0) {
            off += (size_t) n;
            continue;
        }

        if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }

        pfd.fd = c->fd;
        pfd.events = POLLOUT;
        (void) poll(&pfd, 1, 1000);
    }

    return 0;
}


static int
lg_rp_send(lg_rp_conn_t *c, const char *text, size_t len)
{
    return lg_rp_send_frame(c, LG_OP_TEXT, text, len);
}


/* reads what is there; -1 when the connection is gone */

static int
lg_rp_read(lg_rp_conn_t *c)
{
    u_char   *b;
    ssize_t   n;

    for ( ;; ) {
        if (c->pos > 0 && c->pos == c->len) {
            c->pos = 0;
            c->len = 0;
        }

        if (c->cap - c->len < 16384) {
            if (c->pos > c->cap / 2) {
                memmove(c->buf, c->buf + c->pos, c->len - c->pos);
                c->len -= c->pos;
                c->pos = 0;

            } else {
                b = realloc(c->buf, c->cap * 2);
                if (b == NULL) {
                    return -1;
                }

                c->buf = b;
                c->cap *= 2;
            }
        }

        n = read(c->fd, c->buf + c->len, c->cap - c->len);

        if (n > 0) {
            c->len += (size_t) n;
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            return 0;
        }

        c->closed = 1;
        return -1;
    }
}


/* the next text message: 1, 0 when none is complete yet */

static int
lg_rp_next(lg_rp_conn_t *c, const u_char **msg, size_t *mlen)
{
    int        op, fin, i;
    u_char    *p, *end;
    uint64_t   len;

    for ( ;; ) {
        p = c->buf + c->pos;
        end = c->buf + c->len;

        if (end - p < 2) {
            return 0;
        }

        op = p[0] & 0x0f;
        fin = p[0] & 0x80;
        len = p[1] & 0x7f;
        p += 2;

        if (len == 126) {
            if (end - p < 2) {
                return 0;
            }

            len = ((uint64_t) p[0] << 8) | p[1];
            p += 2;

        } else if (len == 127) {
            if (end - p < 8) {
                return 0;
            }

            len = 0;

            for (i = 0; i < 8; i++) {
                len = (len << 8) | p[i];
            }

            p += 8;
        }

        if ((uint64_t) (end - p) < len) {
            return 0;
        }

        c->pos = (size_t) (p + len - c->buf);

        if (op == LG_OP_TEXT && fin) {
            *msg = p;
            *mlen = (size_t) len;
            return 1;
        }

        if (op == LG_OP_PING) {
            (void) lg_rp_send_frame(c, LG_OP_PONG, (const char *) p,
                                    (size_t) len);
            continue;
        }

        if (op == LG_OP_CLOSE) {
            c->closed = 1;
            return 0;
        }

        /* fragments and binary frames: not what the broker sends here */
        lg_rp.malformed++;
    }
}


/* the number after "name": in a message, or -1 */

static int64_t
lg_rp_field(const u_char *p, size_t len, const char *name)
{
    uint64_t       v;
    const u_char  *f, *end;

    end = p + len;
    f = memmem(p, len, name, strlen(name));

    if (f == NULL || lg_get_u64(f + strlen(name), end, &v) == NULL) {
        return -1;
    }

    return (int64_t) v;
}


static int
lg_rp_is_response(const u_char *p, size_t len)
{
    return memmem(p, len, "\"type\":\"response\"", 17) != NULL;
}


static int
lg_rp_publish(uint64_t seq, int ack)
{
    int   n;
    char  req[70000];

    n = snprintf(req, sizeof(req),
                 "{\"id\":\"p%" PRIu64 "\",\"action\":\"publish\","
                 "\"topic\":\"%s\",\"data\":{\"seq\":%" PRIu64 ","
                 "\"ts\":0,\"pad\":\"%s\"}%s}",
                 seq, lg_rp.topic, seq, lg_rp.pad,
                 ack ? ",\"requireAck\":true" : "");

    lg_rp.sent++;

    return lg_rp_send(&lg_rp.ctrl, req, (size_t) n);
}


/* the control connection's answers: acks counted, the rest returned */

static int
lg_rp_ctrl_answer(const u_char *p, size_t len)
{
    if (memmem(p, len, "\"action\":\"publish\"", 18) == NULL) {
        return 1;
    }

    if (lg_rp_field(p, len, "\"code\":") == 200) {
        lg_rp.acked++;

    } else {
        lg_rp.errors++;

        if (lg_rp.errors <= LG_PRINT_ERRORS) {
            lg_print_problem("publish failed", p, len);
        }
    }

    return 0;
}


static void lg_rp_poll(int ms);


/* sends a request and waits for the answer with id (a "\"id\":..." part) */

static int
lg_rp_request(const char *req, const char *id, u_char **out, size_t *olen)
{
    uint64_t  deadline;

    lg_rp.want = id;
    lg_rp.got = NULL;

    if (lg_rp_send(&lg_rp.ctrl, req, strlen(req)) != 0) {
        return -1;
    }

    deadline = lg_now() + (uint64_t) (lg_conf.timeout * LG_NS);

    while (lg_rp.want && !lg_rp.ctrl.closed && lg_now() < deadline) {
        lg_rp_poll(100);
    }

    if (lg_rp.got == NULL) {
        lg_log("no answer to %s", id);
        return -1;
    }

    *out = lg_rp.got;
    *olen = lg_rp.got_len;

    return 0;
}


/* publishes n with a window of unacknowledged ones, until all are acked */

static int
lg_rp_publish_all(uint64_t first, uint64_t n)
{
    uint64_t  next, last, deadline;

    next = first;
    last = first + n;
    deadline = lg_now() + (uint64_t) (lg_conf.timeout * LG_NS) + n * LG_MS;

    while (lg_rp.acked + lg_rp.errors < lg_rp.sent || next < last) {
        while (next < last
               && lg_rp.sent - lg_rp.acked - lg_rp.errors < lg_conf.window)
        {
            if (lg_rp_publish(next++, 1) != 0) {
                return -1;
            }
        }

        lg_rp_poll(100);

        if (lg_rp.ctrl.closed || lg_now() > deadline) {
            lg_log("publishes not acknowledged in time");
            return -1;
        }
    }

    return lg_rp.errors ? -1 : 0;
}


/* a subscriber's message: its answer or a delivery */

static void
lg_rp_on_sub(lg_rp_conn_t *c, const u_char *p, size_t len, uint64_t now)
{
    int64_t  v;

    if (lg_rp_is_response(p, len)) {
        c->answered = now;
        c->code = (int) lg_rp_field(p, len, "\"code\":");
        v = lg_rp_field(p, len, "\"rev\":");
        c->rev = v > 0 ? (uint64_t) v : 0;
        v = lg_rp_field(p, len, "\"replayed\":");
        c->replayed = v > 0 ? (uint64_t) v : 0;
        c->recovered = memmem(p, len, "\"recovered\":true", 16) != NULL;
        c->last = c->resume ? 0 : c->rev;

        if (c->code != 200 && lg_rp.errors++ < LG_PRINT_ERRORS) {
            lg_print_problem("subscribe failed", p, len);
        }

        return;
    }

    v = lg_rp_field(p, len, "\"rev\":");

    if (v < 0) {
        lg_rp.malformed++;
        return;
    }

    c->delivered++;

    if (!c->answered) {
        c->early++;
        return;
    }

    if ((uint64_t) v != c->last + 1) {
        c->gaps++;
    }

    c->last = (uint64_t) v;
}


/* reads every subscriber epoll says is readable, for up to ms */

static void
lg_rp_poll(int ms)
{
    int                 i, n;
    size_t              len;
    uint64_t            now;
    lg_rp_conn_t       *c;
    const u_char       *p;
    struct epoll_event  ev[256];

    n = epoll_wait(lg_rp.ep, ev, 256, ms);

    for (i = 0; i < n; i++) {
        c = ev[i].data.ptr;

        if (c == &lg_rp.ctrl) {
            (void) lg_rp_read(c);

            while (lg_rp_next(c, &p, &len)) {
                if (lg_rp_ctrl_answer(p, len) == 0 || lg_rp.want == NULL
                    || memmem(p, len, lg_rp.want, strlen(lg_rp.want))
                       == NULL)
                {
                    continue;
                }

                lg_rp.got = malloc(len + 1);
                if (lg_rp.got) {
                    memcpy(lg_rp.got, p, len);
                    lg_rp.got[len] = '\0';
                    lg_rp.got_len = len;
                }

                lg_rp.want = NULL;
            }

            continue;
        }

        /* the time of this connection's read, not of the whole batch */

        (void) lg_rp_read(c);
        now = lg_now();

        while (lg_rp_next(c, &p, &len)) {
            lg_rp_on_sub(c, p, len, now);
        }

        if (c->closed) {
            (void) epoll_ctl(lg_rp.ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
    }
}


static int
lg_rp_watch(lg_rp_conn_t *c)
{
    struct epoll_event  ev;

    ev.events = EPOLLIN;
    ev.data.ptr = c;

    return epoll_ctl(lg_rp.ep, EPOLL_CTL_ADD, c->fd, &ev);
}


static int
lg_rp_setup(const char *kind, uint64_t history)
{
    char     req[512];
    u_char  *a;
    size_t   len;
    char    *pad, *e, *q;

    lg_rp.ep = epoll_create1(0);

    pad = malloc(lg_conf.size + 1);
    if (pad == NULL || lg_rp.ep == -1) {
        return -1;
    }

    memset(pad, 'x', lg_conf.size);
    pad[lg_conf.size > 40 ? lg_conf.size - 40 : 0] = '\0';
    lg_rp.pad = pad;

    snprintf(lg_rp.topic, sizeof(lg_rp.topic), "bench-%s-%s", kind,
             lg_conf.run);

    if (lg_rp_connect(&lg_rp.ctrl) != 0 || lg_rp_watch(&lg_rp.ctrl) != 0) {
        return -1;
    }

    if (history) {
        snprintf(req, sizeof(req),
                 "{\"id\":\"r\",\"action\":\"registerTopic\",\"topic\":\"%s\","
                 "\"data\":{\"seq\":null,\"ts\":null,\"pad\":null},"
                 "\"retention\":{\"history\":%" PRIu64 "},"
                 "\"requireAck\":true}", lg_rp.topic, history);

    } else {
        snprintf(req, sizeof(req),
                 "{\"id\":\"r\",\"action\":\"registerTopic\",\"topic\":\"%s\","
                 "\"data\":{\"seq\":null,\"ts\":null,\"pad\":null},"
                 "\"requireAck\":true}", lg_rp.topic);
    }

    if (lg_rp_request(req, "\"id\":\"r\"", &a, &len) != 0) {
        return -1;
    }

    if (lg_rp_field(a, len, "\"code\":") != 200) {
        lg_print_problem("registerTopic failed", a, len);
        free(a);
        return -1;
    }

    free(a);

    snprintf(req, sizeof(req), "{\"id\":\"g\",\"action\":\"get\","
             "\"topic\":\"%s\"}", lg_rp.topic);

    if (lg_rp_request(req, "\"id\":\"g\"", &a, &len) != 0) {
        return -1;
    }

    e = strstr((char *) a, "\"epoch\":\"");
    q = e ? strchr(e + 9, '"') : NULL;

    if (q == NULL || (size_t) (q - e - 9) >= sizeof(lg_rp.epoch)) {
        lg_print_problem("get has no epoch", a, len);
        free(a);
        return -1;
    }

    memcpy(lg_rp.epoch, e + 9, (size_t) (q - e - 9));
    free(a);

    return 0;
}


static void
lg_rp_json_start(FILE *f, const char *mode)
{
    fprintf(f, "{\n  \"workload\": \"%s\",\n  \"mode\": \"%s\",\n"
            "  \"run\": \"%s\",\n", lg_conf.label ? lg_conf.label : mode,
            mode, lg_conf.run);
}


static int
lg_rp_catch_up(uint64_t n)
{
    int            ok;
    char           req[512];
    FILE          *f;
    uint64_t       t0, t1, tp, deadline, top;
    lg_rp_conn_t  *c;

    if (lg_rp_setup("catchup", n) != 0) {
        return 2;
    }

    lg_log("catch-up: %" PRIu64 " publishes to %s", n, lg_rp.topic);

    tp = lg_now();

    if (lg_rp_publish_all(1, n) != 0) {
        return 2;
    }

    tp = lg_now() - tp;

    lg_rp.subs = calloc(1, sizeof(lg_rp_conn_t));
    lg_rp.nsubs = 1;
    c = lg_rp.subs;

    if (c == NULL || lg_rp_connect(c) != 0 || lg_rp_watch(c) != 0) {
        return 2;
    }

    c->resume = 1;

    snprintf(req, sizeof(req),
             "{\"id\":\"c\",\"action\":\"subscribe\",\"topic\":\"%s\","
             "\"since\":{\"epoch\":\"%s\",\"rev\":0}}",
             lg_rp.topic, lg_rp.epoch);

    t0 = lg_now();
    c->sent_at = t0;
    t1 = 0;

    if (lg_rp_send(c, req, strlen(req)) != 0) {
        return 2;
    }

    deadline = t0 + (uint64_t) (lg_conf.timeout * LG_NS) + n * 20 * 1000;

    while (!c->closed && lg_now() < deadline) {
        lg_rp_poll(100);

        if (c->answered && c->last >= n) {
            t1 = lg_now();
            break;
        }
    }

    /* then live, right behind the replay */

    top = n + LG_RP_LIVE;

    if (t1) {
        if (lg_rp_publish_all(n + 1, LG_RP_LIVE) != 0) {
            return 2;
        }

        deadline = lg_now() + (uint64_t) (lg_conf.timeout * LG_NS);

        while (!c->closed && c->last < top && lg_now() < deadline) {
            lg_rp_poll(100);
        }
    }

    ok = t1 && c->code == 200 && c->recovered && c->replayed == n
         && c->last == top && c->gaps == 0 && c->early == 0
         && lg_rp.errors == 0 && lg_rp.malformed == 0;

    printf("catch-up     %" PRIu64 " revisions published in %.2f s "
           "(%.0f/s, window %u)\n", n, (double) tp / LG_NS,
           (double) n * LG_NS / (double) (tp ? tp : 1), lg_conf.window);
    printf("  answer     code %d, recovered %s, replayed %" PRIu64
           ", at rev %" PRIu64 "\n", c->code, c->recovered ? "true" : "false",
           c->replayed, c->rev);

    if (t1) {
        printf("  replay     %" PRIu64 " deliveries in %.3f s: %.0f "
               "messages/s\n", n, (double) (t1 - t0) / LG_NS,
               (double) n * LG_NS / (double) (t1 - t0));
    } else {
        printf("  replay     not finished: %" PRIu64 " of %" PRIu64 "\n",
               c->delivered, n);
    }

    printf("  live       up to rev %" PRIu64 " of %" PRIu64 ", gaps %"
           PRIu64 ", early %" PRIu64 ", malformed %" PRIu64 ": %s\n",
           c->last, top, c->gaps, c->early, lg_rp.malformed,
           ok ? "ok" : "FAILED");

    if (lg_conf.json) {
        f = fopen(lg_conf.json, "w");
        if (f == NULL) {
            lg_log("%s: %s", lg_conf.json, strerror(errno));
            return 2;
        }

        lg_rp_json_start(f, "catch-up");
        fprintf(f, "  \"revisions\": %" PRIu64 ",\n"
                "  \"publish_s\": %.3f,\n"
                "  \"code\": %d,\n  \"recovered\": %s,\n"
                "  \"replayed\": %" PRIu64 ",\n"
                "  \"replay_s\": %.4f,\n"
                "  \"messages_per_s\": %.0f,\n"
                "  \"live\": %d,\n  \"last_rev\": %" PRIu64 ",\n"
                "  \"gaps\": %" PRIu64 ",\n  \"early\": %" PRIu64 ",\n"
                "  \"malformed\": %" PRIu64 ",\n  \"ok\": %s\n}\n",
                n, (double) tp / LG_NS, c->code,
                c->recovered ? "true" : "false", c->replayed,
                t1 ? (double) (t1 - t0) / LG_NS : 0.0,
                t1 ? (double) n * LG_NS / (double) (t1 - t0) : 0.0,
                LG_RP_LIVE, c->last, c->gaps, c->early, lg_rp.malformed,
                ok ? "true" : "false");
        fclose(f);
    }

    return ok ? 0 : 1;
}


static int
lg_rp_snapshots(uint32_t k)
{
    int            ok;
    char           req[512];
    FILE          *f;
    uint32_t       i, answered, failed;
    uint64_t       t0, now, next, seq, interval, last_answer, deadline, gaps;
    uint64_t       early, delivered, burst;
    lg_hist_t      h;
    lg_rp_conn_t  *c;

    if (lg_rp_setup("snapshot", 0) != 0) {
        return 2;
    }

    if (lg_rp_publish_all(1, LG_RP_SEED) != 0) {
        return 2;
    }

    lg_rp.subs = calloc(k, sizeof(lg_rp_conn_t));
    lg_rp.nsubs = k;

    if (lg_rp.subs == NULL) {
        return 2;
    }

    for (i = 0; i < k; i++) {
        if (lg_rp_connect(&lg_rp.subs[i]) != 0
            || lg_rp_watch(&lg_rp.subs[i]) != 0)
        {
            lg_log("connection %u of %u failed", i + 1, k);
            return 2;
        }
    }

    lg_log("snapshots: %u connections open, publishing at %.0f/s", k,
           lg_conf.rate);

    /* publishing, paced; the burst of subscribes once it runs */

    interval = lg_conf.rate > 0 ? (uint64_t) (LG_NS / lg_conf.rate) : LG_MS;
    seq = LG_RP_SEED + 1;
    t0 = lg_now();
    next = t0;
    last_answer = 0;
    answered = 0;
    burst = 0;
    deadline = t0 + LG_RP_LEAD_NS + (uint64_t) (lg_conf.timeout * LG_NS);
    lg_hist_init(&h);

    for ( ;; ) {
        now = lg_now();

        while (next <= now) {
            if (lg_rp_publish(seq++, 1) != 0) {
                return 2;
            }

            next += interval;
        }

        if (lg_rp.subs[0].sent_at == 0 && now - t0 >= LG_RP_LEAD_NS) {
            burst = lg_now();

            for (i = 0; i < k; i++) {
                c = &lg_rp.subs[i];
                snprintf(req, sizeof(req),
                         "{\"id\":\"s%u\",\"action\":\"subscribe\","
                         "\"topic\":\"%s\",\"snapshot\":true}",
                         i, lg_rp.topic);
                c->sent_at = lg_now();

                if (lg_rp_send(c, req, strlen(req)) != 0) {
                    return 2;
                }

                /*
                 * the answers that came meanwhile are read now, each
                 * timed when read: otherwise the first ones would wait
                 * for the generator to write the rest of the burst
                 */

                if (i % LG_RP_BURST_READ == LG_RP_BURST_READ - 1) {
                    lg_rp_poll(0);
                }
            }

            burst = lg_now() - burst;
        }

        lg_rp_poll(1);

        if (lg_rp.subs[0].sent_at && !last_answer) {
            for (answered = 0, i = 0; i < k; i++) {
                answered += lg_rp.subs[i].answered != 0;
            }

            if (answered == k) {
                last_answer = lg_now();
            }
        }

        if ((last_answer && lg_now() - last_answer > LG_RP_TAIL_NS)
            || lg_now() > deadline)
        {
            break;
        }
    }

    /* the acks still out */
    deadline = lg_now() + 2 * LG_NS;

    while (lg_rp.acked + lg_rp.errors < lg_rp.sent && lg_now() < deadline) {
        lg_rp_poll(10);
    }

    answered = 0;
    failed = 0;
    gaps = 0;
    early = 0;
    delivered = 0;

    for (i = 0; i < k; i++) {
        c = &lg_rp.subs[i];

        if (c->answered) {
            answered++;
            lg_hist_record(&h, c->answered - c->sent_at);
        }

        failed += c->answered && c->code != 200;
        gaps += c->gaps;
        early += c->early;
        delivered += c->delivered;
    }

    ok = answered == k && failed == 0 && gaps == 0 && early == 0
         && lg_rp.errors == 0 && lg_rp.malformed == 0 && delivered > 0;

    printf("snapshots    %u subscribes with snapshot at once, %" PRIu64
           " publishes at %.0f/s meanwhile\n", k, lg_rp.sent - LG_RP_SEED,
           lg_conf.rate);
    printf("  answers    %u of %u, %u failed; ms p50 %.2f p90 %.2f p99 "
           "%.2f max %.2f\n", answered, k, failed,
           (double) lg_hist_quantile(&h, 0.5) / LG_MS,
           (double) lg_hist_quantile(&h, 0.9) / LG_MS,
           (double) lg_hist_quantile(&h, 0.99) / LG_MS,
           (double) lg_hist_quantile(&h, 1.0) / LG_MS);
    printf("  burst      written in %.2f ms, answers read between every "
           "%d subscribes\n", (double) burst / LG_MS, LG_RP_BURST_READ);
    printf("  after      %" PRIu64 " deliveries, gaps %" PRIu64 ", before "
           "the answer %" PRIu64 ", malformed %" PRIu64 ": %s\n", delivered,
           gaps, early, lg_rp.malformed, ok ? "ok" : "FAILED");

    if (lg_conf.json) {
        f = fopen(lg_conf.json, "w");
        if (f == NULL) {
            lg_log("%s: %s", lg_conf.json, strerror(errno));
            return 2;
        }

        lg_rp_json_start(f, "snapshots");
        fprintf(f, "  \"clients\": %u,\n  \"answered\": %u,\n"
                "  \"failed\": %u,\n  \"rate\": %.0f,\n"
                "  \"published\": %" PRIu64 ",\n"
                "  \"p50_ms\": %.3f,\n  \"p90_ms\": %.3f,\n"
                "  \"p99_ms\": %.3f,\n  \"max_ms\": %.3f,\n"
                "  \"burst_ms\": %.3f,\n"
                "  \"delivered\": %" PRIu64 ",\n  \"gaps\": %" PRIu64 ",\n"
                "  \"early\": %" PRIu64 ",\n  \"malformed\": %" PRIu64 ",\n"
                "  \"ok\": %s\n}\n",
                k, answered, failed, lg_conf.rate, lg_rp.sent - LG_RP_SEED,
                (double) lg_hist_quantile(&h, 0.5) / LG_MS,
                (double) lg_hist_quantile(&h, 0.9) / LG_MS,
                (double) lg_hist_quantile(&h, 0.99) / LG_MS,
                (double) lg_hist_quantile(&h, 1.0) / LG_MS,
                (double) burst / LG_MS,
                delivered, gaps, early, lg_rp.malformed,
                ok ? "true" : "false");
        fclose(f);
    }

    return ok ? 0 : 1;
}


int
lg_replay_main(void)
{
    if (lg_conf.catch_up) {
        return lg_rp_catch_up(lg_conf.catch_up);
    }

    return lg_rp_snapshots(lg_conf.snapshots);
}
