/*
 * Copyright (C) Data Loom
 */


/*
 * loomgen: a load generator for the Data Loom WebSocket broker.
 *
 * Pub/sub mode: registers K topics, opens S subscribers spread round-robin
 * over them, then P publishers (also round-robin), publishes for a while
 * at a fixed rate per publisher or as fast as a window of unacknowledged
 * publishes allows, waits for the deliveries still in flight, and reports
 * counts, rates and the latency from publish to delivery.
 *
 * Connections-only mode (--connections-only N): opens N idle connections,
 * checks each with a ping, and reports the memory the nginx workers use
 * for them.
 *
 * Design: one epoll loop per thread (one thread by default), non-blocking
 * sockets, every buffer allocated before the measurement starts.  Publish
 * frames are built in place in the connection's output buffer; replies are
 * not parsed as JSON but scanned for the few fields needed; the output of a
 * connection is written once per loop iteration.  Send times are
 * CLOCK_MONOTONIC nanoseconds carried in the messages themselves, so the
 * latency of a delivery is the time it was read minus its "ts" field.
 */


#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loomgen_hist.h"


#define LG_NS                1000000000ULL
#define LG_MS                1000000ULL

#define LG_RBUF_SIZE         (2 * 1024 * 1024)   /* read buffer per loop */
#define LG_READ_MAX          (256 * 1024)        /* bytes per recv() */
#define LG_MAX_MESSAGE       (LG_RBUF_SIZE - LG_READ_MAX - 16)
#define LG_SMALL_WBUF        1024                /* non-publishers */
#define LG_MAX_HTTP          8192                /* handshake response */
#define LG_MAX_EVENTS        1024
#define LG_SENDER_LEN        36    /* the server's generated ClientId */
#define LG_MAX_CODES         16    /* distinct close codes recorded */
#define LG_PRINT_ERRORS      5     /* error messages printed, at most */
#define LG_SWEEP_NS          (100 * LG_MS)
#define LG_SNAP_NS           (200 * LG_MS)
#define LG_RETRY_NS          (250 * LG_MS)
#define LG_BARRIER_POLL_NS   (1 * LG_MS)
#define LG_START_DELAY_NS    (20 * LG_MS)

#define LG_WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#define LG_OP_CONT           0x0
#define LG_OP_TEXT           0x1
#define LG_OP_BINARY         0x2
#define LG_OP_CLOSE          0x8
#define LG_OP_PING           0x9
#define LG_OP_PONG           0xa

#define lg_min(a, b)         ((a) < (b) ? (a) : (b))
#define lg_max(a, b)         ((a) > (b) ? (a) : (b))
#define lg_str(s)            (s), (sizeof(s) - 1)


/* connection states */
enum {
    LG_C_NEW = 0,        /* not started yet */
    LG_C_RETRY,          /* failed, starts again at "started" */
    LG_C_CONNECTING,     /* TCP connect in progress */
    LG_C_HANDSHAKE,      /* HTTP upgrade request sent */
    LG_C_OPEN,           /* WebSocket open */
    LG_C_CLOSING,        /* a close frame went out or came in */
    LG_C_CLOSED,         /* fd closed: done (or failed) */
};

/* connection roles */
enum {
    LG_R_CTRL = 0,       /* registers the topics */
    LG_R_SUB,
    LG_R_PUB,
    LG_R_IDLE,
};

/* phases of a loop; each ends at a barrier shared by all loops */
enum {
    LG_PH_REGISTER = 0,
    LG_PH_SUBSCRIBE,
    LG_PH_PUBLISHERS,
    LG_PH_RUN,
    LG_PH_DRAIN,
    LG_PH_OPEN,
    LG_PH_HOLD,
    LG_PH_CLOSE,
    LG_PH_DONE,
    LG_PH_COUNT
};

static const char *lg_phase_name[] = {
    "register", "subscribe", "publishers", "run", "drain", "open", "hold",
    "close", "done"
};


typedef struct {
    const char          *host;
    int                  port;
    const char          *path;
    const char          *label;
    const char          *json;
    char                 run[64];

    uint32_t             topics;
    uint32_t             subscribers;
    uint32_t             publishers;
    uint32_t             connections;    /* connections-only mode if > 0 */
    uint32_t             threads;
    uint32_t             window;
    uint32_t             size;
    uint32_t             max_pending;
    uint32_t             retries;

    double               rate;           /* per publisher, 0: unpaced */
    double               duration;
    double               drain;
    double               ramp;
    double               hold;
    double               timeout;

    pid_t                nginx_master;
    int                  quiet;

    struct sockaddr_in   addr;
    char                 host_header[300];
} lg_conf_t;


/* a subscriber's view of one publisher of its topic */
typedef struct {
    uint64_t             max;            /* highest seq seen */
    uint64_t             bits;           /* bit i: seq max - i seen */
} lg_slot_t;


typedef struct {
    int                  fd;
    uint8_t              state;
    uint8_t              role;
    uint8_t              ready;          /* subscribed, registered, ... */
    uint8_t              dirty;          /* on the loop's flush list */
    uint8_t              close_sent;
    uint8_t              dead;           /* accounted as gone */
    uint8_t              attempts;
    uint8_t              frag_op;
    uint32_t             events;         /* registered with epoll */

    uint32_t             index;          /* within its role, global */
    uint32_t             topic;

    uint64_t             started;        /* connect (or retry) time */

    u_char              *wbuf;
    uint32_t             wpos;
    uint32_t             wlen;
    uint32_t             wcap;

    u_char              *carry;          /* a partial frame between reads */
    uint32_t             clen;
    uint32_t             ccap;

    u_char              *frag;           /* a fragmented message */
    uint32_t             flen;
    uint32_t             fcap;

    char                 key[25];        /* Sec-WebSocket-Key */

    /* publisher */
    uint64_t             seq;            /* last sequence sent */
    uint64_t             acks;           /* responses to publishes */
    uint64_t            *ring;           /* send times, by seq */
    uint64_t             ring_mask;
    uint64_t             offset;         /* schedule phase, ns */

    /* subscriber; the control connection counts registrations here */
    lg_slot_t           *slots;
    uint32_t             nslots;
    uint64_t             delivered;
} lg_conn_t;


typedef struct {
    uint32_t             code;
    uint64_t             count;
} lg_code_t;


/* what a loop counts; summed over loops for the report */
typedef struct {
    uint64_t             sent;
    uint64_t             acked;
    uint64_t             errors;
    uint64_t             delivered;
    uint64_t             delivered_bytes;
    uint64_t             duplicates;
    uint64_t             out_of_order;
    uint64_t             misrouted;
    uint64_t             malformed;
    uint64_t             unexpected;
    uint64_t             scheduled;
    uint64_t             late;           /* sent > 1 ms after due */
    uint64_t             lag_max;
    uint64_t             connect_failures;
    uint64_t             failed;         /* gave up after retries */
    uint64_t             disconnects;    /* without a close frame */
    uint64_t             pings;
    uint64_t             closed;         /* close handshakes completed */
    uint64_t             forced;         /* closed at the close timeout */
    uint64_t             ready;          /* connections that got ready */
    uint64_t             dead_subs;      /* during run and drain */
    uint64_t             dead_pubs;
    uint64_t             last_delivery;
    uint64_t             last_ack;
    uint32_t             ncodes;
    lg_code_t            codes[LG_MAX_CODES];
    lg_hist_t            latency;
    lg_hist_t            ack_latency;
} lg_stats_t;


/* what the progress printer reads, under the shared mutex */
typedef struct {
    int                  phase;
    uint64_t             sent;
    uint64_t             acked;
    uint64_t             errors;
    uint64_t             delivered;
    uint64_t             ready;
    uint64_t             open;
} lg_snap_t;


typedef struct {
    atomic_uint          arrived;
    atomic_int           released;
} lg_barrier_t;


typedef struct {
    int                  id;
    int                  ep;
    pthread_t            thread;

    lg_conn_t           *conns;          /* [ctrl] [subs] [pubs] or [idle] */
    uint32_t             nconns;
    lg_conn_t           *ctrl;
    lg_conn_t           *subs;
    uint32_t             nsubs;
    lg_conn_t           *pubs;
    uint32_t             npubs;

    lg_conn_t          **dirty;
    uint32_t             ndirty;

    u_char              *rbuf;
    uint64_t             rng;

    uint64_t             now;
    uint64_t             now_read;       /* when the last recv() returned */
    uint64_t             next_due;       /* the next publish, if paced */

    int                  phase;
    lg_barrier_t        *wait;
    int                  counting;
    int                  sent_published;

    /* the ramp of the current phase: conns[first..last) */
    uint32_t             first;
    uint32_t             last;
    uint32_t             next;
    uint64_t             ramp_start;
    double               ramp_rate;
    uint32_t             pending;        /* connecting, not ready */
    uint32_t             settled;        /* ready or failed */
    uint64_t             next_sweep;
    uint64_t             deadline;       /* close phase */

    uint64_t             open;           /* connections open now */
    uint32_t             nfds;           /* sockets now */

    uint64_t            *sent_topic;     /* [topics] */
    uint32_t            *subs_run;       /* subscribed at the run start */
    uint32_t            *subs_live;
    uint64_t             dead_delivered;
    uint64_t             dead_pending;   /* acks that will never come */

    uint64_t             next_snap;
    lg_snap_t            snap;

    lg_stats_t           st;
} lg_loop_t;


static lg_conf_t         conf;
static lg_loop_t        *loops;
static char            **topic_name;
static uint32_t         *topic_name_len;
static const char       *pad_bytes;

static struct {
    lg_barrier_t         bar[LG_PH_COUNT];
    _Atomic uint64_t     t0;
    _Atomic uint64_t     t_end;
    _Atomic uint64_t     drain_end;
    _Atomic uint64_t     hold_end;
    _Atomic uint64_t     run_end;        /* when the drain finished */
    _Atomic uint64_t    *sent_topic;
    atomic_int           stop;
    atomic_int           fatal;
    atomic_int           printed;
    atomic_uint          done;
    pthread_mutex_t      mutex;

    uint64_t             rss_before;     /* kB, summed over workers */
    uint64_t             rss_after;
    int                  workers_before;
    int                  workers_after;
    uint64_t             setup_end;
} sh;


static void lg_conn_start(lg_loop_t *lp, lg_conn_t *c);
static void lg_conn_fail(lg_loop_t *lp, lg_conn_t *c, const char *why);
static void lg_conn_gone(lg_loop_t *lp, lg_conn_t *c);
static void lg_conn_close_fd(lg_loop_t *lp, lg_conn_t *c);
static void lg_conn_ready(lg_loop_t *lp, lg_conn_t *c);
static int lg_send_frame(lg_loop_t *lp, lg_conn_t *c, int op,
    const u_char *data, size_t len);
static void lg_enter(lg_loop_t *lp, int phase);
static int lg_nginx_rss(pid_t master, uint64_t *kb);


/* time and randomness */

static inline uint64_t
lg_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * LG_NS + (uint64_t) ts.tv_nsec;
}


static inline uint64_t
lg_random(lg_loop_t *lp)
{
    /* xorshift64*: masking keys need not be cryptographic here */

    lp->rng ^= lp->rng >> 12;
    lp->rng ^= lp->rng << 25;
    lp->rng ^= lp->rng >> 27;

    return lp->rng * 0x2545F4914F6CDD1DULL;
}


static void
lg_log(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    fputs("loomgen: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}


/* prints the first few problems the server reports, then only counts */

static void
lg_print_problem(const char *what, const u_char *p, size_t len)
{
    size_t  i, n;
    char    text[301];

    if (atomic_fetch_add(&sh.printed, 1) >= LG_PRINT_ERRORS) {
        return;
    }

    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    n = lg_min(len, sizeof(text) - 1);

    for (i = 0; i < n; i++) {
        text[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char) p[i] : '.';
    }

    text[n] = '\0';

    lg_log("%s: %s%s", what, text, len > n ? "..." : "");
}


/* numbers */

static inline unsigned
lg_digits(uint64_t v)
{
    unsigned  n;

    for (n = 1; v >= 10; n++) {
        v /= 10;
    }

    return n;
}


/* writes v in exactly n digits (n from lg_digits()) and returns the end */

static inline u_char *
lg_put_u64(u_char *p, uint64_t v, unsigned n)
{
    u_char  *q;

    q = p + n;

    do {
        *--q = (u_char) ('0' + v % 10);
        v /= 10;
    } while (q > p);

    return p + n;
}


static inline const u_char *
lg_get_u64(const u_char *p, const u_char *end, uint64_t *v)
{
    uint64_t  n;

    if (p >= end || *p < '0' || *p > '9') {
        return NULL;
    }

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t) (*p - '0');
    }

    *v = n;

    return p;
}


static inline int
lg_has(const u_char *p, const u_char *end, const char *s, size_t len)
{
    return (size_t) (end - p) >= len && memcmp(p, s, len) == 0;
}


/* SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept only */

#define lg_rol(x, n)  (((x) << (n)) | ((x) >> (32 - (n))))

static void
lg_sha1(const u_char *data, size_t len, u_char out[20])
{
    u_char    buf[128];
    size_t    n, off, i;
    uint32_t  h[5], w[80], a, b, c, d, e, f, k, t;
    uint64_t  bits;

    h[0] = 0x67452301;
    h[1] = 0xefcdab89;
    h[2] = 0x98badcfe;
    h[3] = 0x10325476;
    h[4] = 0xc3d2e1f0;

    /* the caller's messages are short: at most two blocks */

    n = ((len + 8) / 64 + 1) * 64;
    memset(buf, 0, n);
    memcpy(buf, data, len);
    buf[len] = 0x80;

    bits = (uint64_t) len * 8;

    for (i = 0; i < 8; i++) {
        buf[n - 1 - i] = (u_char) (bits >> (8 * i));
    }

    for (off = 0; off < n; off += 64) {

        for (i = 0; i < 16; i++) {
            w[i] = (uint32_t) buf[off + 4 * i] << 24
                   | (uint32_t) buf[off + 4 * i + 1] << 16
                   | (uint32_t) buf[off + 4 * i + 2] << 8
                   | (uint32_t) buf[off + 4 * i + 3];
        }

        for (i = 16; i < 80; i++) {
            t = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
            w[i] = lg_rol(t, 1);
        }

        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];

        for (i = 0; i < 80; i++) {
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5a827999;

            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ed9eba1;

            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8f1bbcdc;

            } else {
                f = b ^ c ^ d;
                k = 0xca62c1d6;
            }

            t = lg_rol(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = lg_rol(b, 30);
            b = a;
            a = t;
        }

        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }

    for (i = 0; i < 20; i++) {
        out[i] = (u_char) (h[i / 4] >> (24 - 8 * (i % 4)));
    }
}


static size_t
lg_base64(const u_char *src, size_t len, char *dst)
{
    size_t       i;
    uint32_t     v;
    char        *p;
    static char  abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789+/";

    p = dst;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 0x3f];
        *p++ = abc[(v >> 6) & 0x3f];
        *p++ = abc[v & 0x3f];
    }

    if (i < len) {
        v = (uint32_t) src[i] << 16;

        if (i + 1 < len) {
            v |= (uint32_t) src[i + 1] << 8;
        }

        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 0x3f];
        *p++ = (i + 1 < len) ? abc[(v >> 6) & 0x3f] : '=';
        *p++ = '=';
    }

    *p = '\0';

    return (size_t) (p - dst);
}


/* barriers: loops keep serving their connections while they wait */

static void
lg_barrier_arrive(lg_loop_t *lp, int phase)
{
    uint64_t       now;
    lg_barrier_t  *b;

    b = &sh.bar[phase];
    lp->wait = b;

    if (atomic_fetch_add(&b->arrived, 1) + 1 < conf.threads) {
        return;
    }

    /* the last loop to arrive does what comes between two phases */

    now = lg_now();

    switch (phase) {

    case LG_PH_PUBLISHERS:
        sh.setup_end = now;
        atomic_store(&sh.t0, now + LG_START_DELAY_NS);
        atomic_store(&sh.t_end, now + LG_START_DELAY_NS
                                + (uint64_t) (conf.duration * LG_NS));
        break;

    case LG_PH_RUN:
        atomic_store(&sh.drain_end, lg_max(now, atomic_load(&sh.t_end))
                                    + (uint64_t) (conf.drain * LG_NS));
        break;

    case LG_PH_DRAIN:
        atomic_store(&sh.run_end, now);
        break;

    case LG_PH_OPEN:
        sh.setup_end = now;

        if (conf.nginx_master) {
            sh.workers_after = lg_nginx_rss(conf.nginx_master, &sh.rss_after);
        }

        atomic_store(&sh.hold_end, lg_now()
                                   + (uint64_t) (conf.hold * LG_NS));
        break;

    default:
        break;
    }

    atomic_store(&b->released, 1);
}


/* output */

static inline void
lg_dirty(lg_loop_t *lp, lg_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        lp->dirty[lp->ndirty++] = c;
    }
}


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

static u_char *
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


static void
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


/*
 * Client frames are masked (RFC 6455, 5.3), with a fresh key each; the
 * payload is XORed eight bytes at a time.
 */

static inline void
lg_mask(u_char *p, size_t len, const u_char key[4])
{
    size_t    i;
    uint64_t  m, v;

    memcpy(&m, key, 4);
    memcpy((u_char *) &m + 4, key, 4);

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&v, p + i, 8);
        v ^= m;
        memcpy(p + i, &v, 8);
    }

    for ( /* void */ ; i < len; i++) {
        p[i] ^= key[i & 3];
    }
}


static inline size_t
lg_frame_header_len(size_t len)
{
    return (len < 126 ? 2 : (len < 65536 ? 4 : 10)) + 4;
}


/* writes a masked frame header, returns where the payload goes */

static inline u_char *
lg_frame_header(lg_loop_t *lp, u_char *p, int op, size_t len,
    u_char key[4])
{
    int       i;
    uint32_t  k;

    *p++ = (u_char) (0x80 | op);

    if (len < 126) {
        *p++ = (u_char) (0x80 | len);

    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 0x80 | 127;

        for (i = 7; i >= 0; i--) {
            *p++ = (u_char) ((uint64_t) len >> (8 * i));
        }
    }

    k = (uint32_t) lg_random(lp);
    memcpy(key, &k, 4);
    memcpy(p, key, 4);

    return p + 4;
}


static int
lg_send_frame(lg_loop_t *lp, lg_conn_t *c, int op, const u_char *data,
    size_t len)
{
    u_char  *p, key[4];

    p = lg_wspace(c, lg_frame_header_len(len) + len);
    if (p == NULL) {
        return -1;
    }

    p = lg_frame_header(lp, p, op, len, key);
    memcpy(p, data, len);
    lg_mask(p, len, key);

    c->wlen = (uint32_t) (p + len - c->wbuf);
    lg_dirty(lp, c);

    return 0;
}


static int
lg_send_text(lg_loop_t *lp, lg_conn_t *c, const char *text, size_t len)
{
    return lg_send_frame(lp, c, LG_OP_TEXT, (const u_char *) text, len);
}


static void
lg_send_close(lg_loop_t *lp, lg_conn_t *c, unsigned code)
{
    u_char  p[2];

    if (c->close_sent) {
        return;
    }

    c->close_sent = 1;

    p[0] = (u_char) (code >> 8);
    p[1] = (u_char) code;

    (void) lg_send_frame(lp, c, LG_OP_CLOSE, p, code ? 2 : 0);
}


/*
 * A publish, built in place:
 *
 * {"id":"p<pub>.<seq>","action":"publish","topic":"<topic>",
 *  "data":{"seq":<seq>,"ts":<ns>,"pad":"xxx"},"requireAck":true}
 *
 * The pad makes the delivery (the same text without "requireAck", with
 * a 36-byte "senderId" and a newline) --size bytes long.
 */

#define LG_P1  "{\"id\":\"p"
#define LG_P2  "\",\"action\":\"publish\",\"topic\":\""
#define LG_P3  "\",\"data\":{\"seq\":"
#define LG_P4  ",\"ts\":"
#define LG_P5  ",\"pad\":\""
#define LG_P6  "\"},\"requireAck\":true}"
#define LG_P_DELIVERY_EXTRA                                                  \
    ((int) sizeof(",\"senderId\":\"\"}\n") - 1 + LG_SENDER_LEN               \
     - ((int) sizeof(",\"requireAck\":true}") - 1))

#define lg_put(p, s)  (memcpy(p, s, sizeof(s) - 1), (p) + sizeof(s) - 1)


static int
lg_publish(lg_loop_t *lp, lg_conn_t *c, uint64_t ts)
{
    u_char    *p, *payload, key[4];
    size_t     len, tlen;
    int64_t    pad;
    uint64_t   seq;
    unsigned   dp, ds, dt;

    seq = c->seq + 1;
    tlen = topic_name_len[c->topic];

    dp = lg_digits(c->index);
    ds = lg_digits(seq);
    dt = lg_digits(ts);

    len = sizeof(LG_P1 LG_P2 LG_P3 LG_P4 LG_P5 LG_P6) - 1
          + dp + 1 + 2 * ds + dt + tlen;

    pad = (int64_t) conf.size - (int64_t) len - LG_P_DELIVERY_EXTRA;

    if (pad > 0) {
        len += (size_t) pad;

    } else {
        pad = 0;
    }

    p = lg_wspace(c, lg_frame_header_len(len) + len);
    if (p == NULL) {
        return -1;
    }

    payload = lg_frame_header(lp, p, LG_OP_TEXT, len, key);

    p = lg_put(payload, LG_P1);
    p = lg_put_u64(p, c->index, dp);
    *p++ = '.';
    p = lg_put_u64(p, seq, ds);
    p = lg_put(p, LG_P2);
    memcpy(p, topic_name[c->topic], tlen);
    p += tlen;
    p = lg_put(p, LG_P3);
    p = lg_put_u64(p, seq, ds);
    p = lg_put(p, LG_P4);
    p = lg_put_u64(p, ts, dt);
    p = lg_put(p, LG_P5);
    memcpy(p, pad_bytes, (size_t) pad);
    p += pad;
    p = lg_put(p, LG_P6);

    lg_mask(payload, len, key);

    c->wlen = (uint32_t) (p - c->wbuf);
    c->seq = seq;
    c->ring[seq & c->ring_mask] = ts;

    lp->st.sent++;
    lp->sent_topic[c->topic]++;
    lg_dirty(lp, c);

    return 0;
}


/* inbound messages */

static void
lg_on_response(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    char          kind;
    uint64_t      code, seq, idx, t;
    const u_char  *end, *q;

    end = p + len;

    q = memmem(p, len, "\"code\":", 7);

    if (q == NULL || lg_get_u64(q + 7, end, &code) == NULL) {
        lp->st.malformed++;
        lg_print_problem("response without a code", p, len);
        return;
    }

    kind = lg_has(p, end, lg_str("{\"id\":\"")) ? (char) p[7] : '\0';

    switch (kind) {

    case 'p':
        if (c->role != LG_R_PUB) {
            break;
        }

        c->acks++;

        if (!lp->counting) {
            return;
        }

        if (code != 200) {
            lp->st.errors++;
            lg_print_problem("publish failed", p, len);
            return;
        }

        lp->st.acked++;
        lp->st.last_ack = lp->now_read;

        /* "p<pub>.<seq>": the send time is in the ring */

        q = lg_get_u64(p + 8, end, &idx);

        if (q != NULL && q < end && *q == '.'
            && lg_get_u64(q + 1, end, &seq) != NULL
            && seq <= c->seq && c->seq - seq <= c->ring_mask)
        {
            t = c->ring[seq & c->ring_mask];
            lg_hist_record(&lp->st.ack_latency,
                           lp->now_read > t ? lp->now_read - t : 0);
        }

        return;

    case 's':
        if (c->role != LG_R_SUB || c->ready) {
            break;
        }

        if (code != 200) {
            lg_print_problem("subscribe failed", p, len);
            c->attempts = (uint8_t) (conf.retries + 1);   /* no retry */
            lg_conn_fail(lp, c, NULL);
            return;
        }

        lg_conn_ready(lp, c);
        return;

    case 'r':
        if (c->role != LG_R_CTRL) {
            break;
        }

        if (code != 200) {
            lg_print_problem("registerTopic failed", p, len);
            atomic_store(&sh.fatal, 1);
            atomic_store(&sh.stop, 1);
            return;
        }

        if (++c->delivered == conf.topics) {
            lg_conn_ready(lp, c);
        }

        return;

    default:
        break;
    }

    lp->st.unexpected++;
    lg_print_problem("unexpected response", p, len);
}


static void
lg_on_delivery(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    uint64_t       pub, seq, ts, d, bit;
    lg_slot_t     *s;
    const u_char  *end, *q;

    if (c->role != LG_R_SUB) {
        lp->st.unexpected++;
        lg_print_problem("delivery to a non-subscriber", p, len);
        return;
    }

    if (!lp->counting) {
        return;
    }

    end = p + len;

    /* {"id":"p<pub>.<seq>",...,"data":{"seq":<seq>,"ts":<ts>,... */

    q = lg_get_u64(p + 8, end, &pub);

    if (q == NULL) {
        goto malformed;
    }

    q = memmem(q, (size_t) (end - q), "\"data\":{\"seq\":", 14);

    if (q == NULL) {
        goto malformed;
    }

    q = lg_get_u64(q + 14, end, &seq);

    if (q == NULL || !lg_has(q, end, lg_str(",\"ts\":"))) {
        goto malformed;
    }

    q = lg_get_u64(q + 6, end, &ts);

    if (q == NULL) {
        goto malformed;
    }

    lg_hist_record(&lp->st.latency, lp->now_read > ts ? lp->now_read - ts
                                                        : 0);

    /* publisher j publishes to topic j % K; it is slot j / K here */

    if (pub % conf.topics != c->topic || pub / conf.topics >= c->nslots
        || seq == 0)
    {
        lp->st.misrouted++;
        lg_print_problem("delivery from an unexpected publisher", p, len);
        return;
    }

    s = &c->slots[pub / conf.topics];

    if (seq > s->max) {
        d = seq - s->max;
        s->bits = (d >= 64) ? 0 : s->bits << d;
        s->bits |= 1;
        s->max = seq;

    } else {
        d = s->max - seq;

        if (d < 64) {
            bit = 1ULL << d;

            if (s->bits & bit) {
                lp->st.duplicates++;
                return;
            }

            s->bits |= bit;
        }

        lp->st.out_of_order++;
    }

    c->delivered++;
    lp->st.delivered++;
    lp->st.delivered_bytes += len;
    lp->st.last_delivery = lp->now_read;

    return;

malformed:

    lp->st.malformed++;
    lg_print_problem("malformed delivery", p, len);
}


static void
lg_on_message(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    size_t  n;

    if (c->close_sent && !lp->counting) {
        return;
    }

    n = len;

    if (n && p[n - 1] == '\n') {
        n--;
    }

    /* responses end in "type":"response"}, deliveries in "senderId" */

    if (n >= sizeof("\"type\":\"response\"}") - 1
        && memcmp(p + n - (sizeof("\"type\":\"response\"}") - 1),
                  "\"type\":\"response\"}",
                  sizeof("\"type\":\"response\"}") - 1) == 0)
    {
        lg_on_response(lp, c, p, len);
        return;
    }

    if (lg_has(p, p + len, lg_str("{\"id\":\"p"))) {
        lg_on_delivery(lp, c, p, len);
        return;
    }

    lp->st.unexpected++;
    lg_print_problem("unexpected message", p, len);
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


static void
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
        if (atomic_fetch_add(&sh.printed, 1) < LG_PRINT_ERRORS) {
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


/*
 * Splits the bytes read into frames (server frames are not masked) and
 * returns how many were used; a partial frame stays for the next read.
 */

static size_t
lg_on_frames(lg_loop_t *lp, lg_conn_t *c, const u_char *b, size_t n)
{
    int            op, fin;
    size_t         hl, pos, need;
    uint64_t       len;
    const u_char  *p;
    u_char        *f;

    pos = 0;

    while (c->fd >= 0 && n - pos >= 2) {
        p = b + pos;
        fin = p[0] & 0x80;
        op = p[0] & 0x0f;

        if ((p[0] & 0x70) || (p[1] & 0x80)) {
            lg_conn_fail(lp, c, "server sent reserved bits or a mask");
            return n;
        }

        len = p[1] & 0x7f;
        hl = 2;

        if (len == 126) {
            if (n - pos < 4) {
                break;
            }

            len = (uint64_t) p[2] << 8 | p[3];
            hl = 4;

        } else if (len == 127) {
            if (n - pos < 10) {
                break;
            }

            len = 0;

            for (hl = 2; hl < 10; hl++) {
                len = len << 8 | p[hl];
            }
        }

        if (len > LG_MAX_MESSAGE) {
            lg_conn_fail(lp, c, "server sent a frame too big for us");
            return n;
        }

        if (n - pos - hl < len) {
            break;
        }

        pos += hl + (size_t) len;
        p += hl;

        if (op >= LG_OP_CLOSE) {
            if (!fin || len > 125) {
                lg_conn_fail(lp, c, "server sent an invalid control frame");
                return n;
            }

            lg_on_control(lp, c, op, p, (size_t) len);
            continue;
        }

        if (op == LG_OP_CONT ? c->frag_op == 0 : c->frag_op != 0) {
            lg_conn_fail(lp, c, "server sent a bad fragment sequence");
            return n;
        }

        if (fin && op != LG_OP_CONT) {
            lg_on_message(lp, c, p, (size_t) len);
            continue;
        }

        /* fragmented messages are rare: collected in their own buffer */

        need = c->flen + (size_t) len;

        if (need > LG_MAX_MESSAGE) {
            lg_conn_fail(lp, c, "server sent a message too big for us");
            return n;
        }

        if (need > c->fcap) {
            f = realloc(c->frag, lg_max(need, 4096));
            if (f == NULL) {
                lg_conn_fail(lp, c, "out of memory");
                return n;
            }

            c->frag = f;
            c->fcap = (uint32_t) lg_max(need, 4096);
        }

        memcpy(c->frag + c->flen, p, (size_t) len);
        c->flen = (uint32_t) need;

        if (op != LG_OP_CONT) {
            c->frag_op = (uint8_t) op;
        }

        if (fin) {
            c->frag_op = 0;
            c->flen = 0;
            lg_on_message(lp, c, c->frag, need);
        }
    }

    return pos;
}


/* the first request of a connection, once it is open */

static void
lg_on_open(lg_loop_t *lp, lg_conn_t *c)
{
    int       len;
    char      req[600];
    uint32_t  k;

    switch (c->role) {

    case LG_R_CTRL:
        for (k = 0; k < conf.topics; k++) {
            len = snprintf(req, sizeof(req),
                           "{\"id\":\"r%u\",\"action\":\"registerTopic\","
                           "\"topic\":\"%s\",\"data\":{\"seq\":null,"
                           "\"ts\":null,\"pad\":null},\"requireAck\":true}",
                           k, topic_name[k]);

            if (lg_send_text(lp, c, req, (size_t) len) != 0) {
                lg_conn_fail(lp, c, "output buffer full");
                return;
            }
        }

        break;

    case LG_R_SUB:
        len = snprintf(req, sizeof(req),
                       "{\"id\":\"s%u\",\"action\":\"subscribe\","
                       "\"topic\":\"%s\",\"requireAck\":true}",
                       c->index, topic_name[c->topic]);

        (void) lg_send_text(lp, c, req, (size_t) len);
        break;

    case LG_R_PUB:
        lg_conn_ready(lp, c);
        break;

    default: /* LG_R_IDLE: alive once it answers a ping */
        (void) lg_send_frame(lp, c, LG_OP_PING, (const u_char *) "loomgen",
                             7);
        break;
    }
}


/* the HTTP response to the upgrade request */

static size_t
lg_on_handshake(lg_loop_t *lp, lg_conn_t *c, const u_char *b, size_t n)
{
    char           accept[32], want[64];
    u_char         digest[20];
    size_t         hlen, klen, i;
    const u_char  *end, *p, *line, *eol;

    end = memmem(b, n, "\r\n\r\n", 4);

    if (end == NULL) {
        if (n > LG_MAX_HTTP) {
            lg_conn_fail(lp, c, "handshake response too long");
            return n;
        }

        return 0;
    }

    hlen = (size_t) (end - b) + 4;

    if (!lg_has(b, end, lg_str("HTTP/1.1 101"))) {
        eol = memmem(b, hlen, "\r\n", 2);
        lg_print_problem("handshake refused", b, (size_t) (eol - b));
        lg_conn_fail(lp, c, NULL);
        return n;
    }

    /* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) */

    klen = strlen(c->key);
    memcpy(want, c->key, klen);
    memcpy(want + klen, LG_WS_GUID, sizeof(LG_WS_GUID) - 1);
    lg_sha1((u_char *) want, klen + sizeof(LG_WS_GUID) - 1, digest);
    lg_base64(digest, 20, accept);

    for (line = b; line < end; line = eol + 2) {
        eol = memmem(line, (size_t) (end + 2 - line), "\r\n", 2);

        if (eol - line < 21 || strncasecmp((const char *) line,
                                           "Sec-WebSocket-Accept:", 21) != 0)
        {
            continue;
        }

        p = line + 21;

        while (p < eol && (*p == ' ' || *p == '\t')) {
            p++;
        }

        for (i = (size_t) (eol - p); i && (p[i - 1] == ' '); i--) {
            /* void */
        }

        if (i == strlen(accept) && memcmp(p, accept, i) == 0) {
            break;
        }

        lg_conn_fail(lp, c, "wrong Sec-WebSocket-Accept");
        return n;
    }

    if (line >= end) {
        lg_conn_fail(lp, c, "no Sec-WebSocket-Accept");
        return n;
    }

    c->state = LG_C_OPEN;
    lp->open++;

    lg_on_open(lp, c);

    return hlen;
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
                   conf.path, conf.host_header, c->key);

    c->wpos = 0;
    c->wlen = (uint32_t) len;
    c->state = LG_C_HANDSHAKE;

    lg_set_events(lp, c, EPOLLIN);
    lg_dirty(lp, c);
}


static void
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

    if (connect(fd, (struct sockaddr *) &conf.addr, sizeof(conf.addr)) == 0) {
        lg_conn_connected(lp, c);
        return;
    }

    if (errno != EINPROGRESS) {
        lg_conn_fail(lp, c, strerror(errno));
    }
}


static void
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


static void
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

static void
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

static void
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

            if (why && atomic_fetch_add(&sh.printed, 1) < LG_PRINT_ERRORS) {
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

    if (c->attempts <= conf.retries && !atomic_load(&sh.stop)) {
        c->state = LG_C_RETRY;
        c->started = lp->now + LG_RETRY_NS;
        return;
    }

    if (why && atomic_fetch_add(&sh.printed, 1) < LG_PRINT_ERRORS) {
        lg_log("connection failed: %s", why);
    }

    lp->st.failed++;
    lp->settled++;

    if (c->role == LG_R_CTRL) {
        atomic_store(&sh.fatal, 1);
        atomic_store(&sh.stop, 1);
    }
}


static void
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


/* the ramp opens connections at conf.ramp per second, split over loops */

static void
lg_ramp(lg_loop_t *lp)
{
    uint64_t  allowed;

    allowed = (uint64_t) ((double) (lp->now - lp->ramp_start)
                          * lp->ramp_rate / LG_NS) + 1;

    while (lp->next < lp->last
           && lp->next - lp->first < allowed
           && lp->pending < conf.max_pending)
    {
        lg_conn_start(lp, &lp->conns[lp->next++]);
    }
}


/* retries, and connections that take too long to become ready */

static void
lg_sweep(lg_loop_t *lp)
{
    uint32_t    i;
    uint64_t    limit;
    lg_conn_t  *c;

    limit = (uint64_t) (conf.timeout * LG_NS);

    for (i = lp->first; i < lp->next; i++) {
        c = &lp->conns[i];

        if (c->ready) {
            continue;
        }

        if (c->state == LG_C_RETRY) {
            if (lp->now >= c->started && lp->pending < conf.max_pending) {
                lg_conn_start(lp, c);
            }

            continue;
        }

        if (c->state != LG_C_CLOSED && lp->now - c->started > limit) {
            lg_conn_fail(lp, c, "timed out");
        }
    }
}


/* publishing: on schedule, or whenever the window has room */

static uint64_t
lg_publish_tick(lg_loop_t *lp)
{
    uint32_t    i;
    uint64_t    t0, t_end, due, wake, now;
    double      interval;
    lg_conn_t  *c;

    t0 = atomic_load(&sh.t0);
    t_end = atomic_load(&sh.t_end);
    wake = t_end;

    interval = conf.rate > 0 ? (double) LG_NS / conf.rate : 0;

    for (i = 0; i < lp->npubs; i++) {
        c = &lp->pubs[i];

        if (c->state != LG_C_OPEN || !c->ready) {
            continue;
        }

        now = lg_now();

        while (c->seq - c->acks < conf.window && now < t_end) {

            if (interval > 0) {
                due = t0 + c->offset + (uint64_t) ((double) c->seq * interval);

                if (due > now) {
                    wake = lg_min(wake, due);
                    break;
                }

                if (now - due > lp->st.lag_max) {
                    lp->st.lag_max = now - due;
                }

                if (now - due > LG_MS) {
                    lp->st.late++;
                }
            }

            if (lg_publish(lp, c, now) != 0) {
                break;
            }
        }
    }

    return wake;
}


/* how many messages the schedule had for a publisher before t_end */

static uint64_t
lg_scheduled(lg_conn_t *c)
{
    uint64_t  t0, t_end, span;
    double    interval;

    if (conf.rate <= 0) {
        return c->seq;
    }

    t0 = atomic_load(&sh.t0);
    t_end = atomic_load(&sh.t_end);
    interval = (double) LG_NS / conf.rate;

    if (t0 + c->offset >= t_end) {
        return 0;
    }

    span = t_end - t0 - c->offset;

    return (uint64_t) ceil((double) span / interval);
}


/* has everything this loop waits for in the drain arrived? */

static int
lg_drained(lg_loop_t *lp)
{
    uint32_t  k;
    uint64_t  expected, delivered, answered;

    expected = 0;

    for (k = 0; k < conf.topics; k++) {
        expected += (uint64_t) lp->subs_live[k]
                    * atomic_load(&sh.sent_topic[k]);
    }

    delivered = lp->st.delivered - lp->dead_delivered;
    answered = lp->st.acked + lp->st.errors + lp->dead_pending;

    return delivered >= expected && answered >= lp->st.sent;
}


static int
lg_phase_done(lg_loop_t *lp)
{
    uint32_t  i;

    switch (lp->phase) {

    case LG_PH_REGISTER:
    case LG_PH_SUBSCRIBE:
    case LG_PH_PUBLISHERS:
    case LG_PH_OPEN:
        return lp->next == lp->last
               && lp->settled == lp->last - lp->first;

    case LG_PH_RUN:
        return lp->now >= atomic_load(&sh.t_end);

    case LG_PH_DRAIN:
        return lp->now >= atomic_load(&sh.drain_end) || lg_drained(lp);

    case LG_PH_HOLD:
        return lp->now >= atomic_load(&sh.hold_end);

    case LG_PH_CLOSE:
        if (lp->now >= lp->deadline) {
            for (i = 0; i < lp->nconns; i++) {
                if (lp->conns[i].fd >= 0) {
                    lp->st.forced++;
                    lg_conn_close_fd(lp, &lp->conns[i]);
                }
            }

            return 1;
        }

        return lp->nfds == 0;

    default:
        return 0;
    }
}


static int
lg_next_phase(int phase)
{
    if (conf.connections) {
        switch (phase) {
        case LG_PH_OPEN:
            return LG_PH_HOLD;
        case LG_PH_HOLD:
            return LG_PH_CLOSE;
        default:
            return LG_PH_DONE;
        }
    }

    switch (phase) {
    case LG_PH_REGISTER:
        return LG_PH_SUBSCRIBE;
    case LG_PH_SUBSCRIBE:
        return LG_PH_PUBLISHERS;
    case LG_PH_PUBLISHERS:
        return LG_PH_RUN;
    case LG_PH_RUN:
        return LG_PH_DRAIN;
    case LG_PH_DRAIN:
        return LG_PH_CLOSE;
    default:
        return LG_PH_DONE;
    }
}


static void
lg_ramp_range(lg_loop_t *lp, lg_conn_t *from, uint32_t n)
{
    lp->first = (uint32_t) (from - lp->conns);
    lp->last = lp->first + n;
    lp->next = lp->first;
    lp->settled = 0;
    lp->pending = 0;
    lp->ramp_start = lp->now;
    lp->ramp_rate = conf.ramp / conf.threads;
    lp->next_sweep = lp->now + LG_SWEEP_NS;
}


static void
lg_enter(lg_loop_t *lp, int phase)
{
    uint32_t    i, k;
    lg_conn_t  *c;

    lp->phase = phase;

    switch (phase) {

    case LG_PH_REGISTER:
        lg_ramp_range(lp, lp->ctrl ? lp->ctrl : lp->conns, lp->ctrl ? 1 : 0);
        break;

    case LG_PH_SUBSCRIBE:
        lg_ramp_range(lp, lp->subs, lp->nsubs);
        break;

    case LG_PH_PUBLISHERS:
        lg_ramp_range(lp, lp->pubs, lp->npubs);
        break;

    case LG_PH_OPEN:
        lg_ramp_range(lp, lp->conns, lp->nconns);
        break;

    case LG_PH_RUN:
        for (k = 0; k < conf.topics; k++) {
            lp->subs_run[k] = lp->subs_live[k];
        }

        lp->counting = 1;
        break;

    case LG_PH_DRAIN:
        /* what was sent is final now that every loop left the run */

        for (i = 0; i < lp->npubs; i++) {
            lp->st.scheduled += lg_scheduled(&lp->pubs[i]);
        }

        break;

    case LG_PH_CLOSE:
        lp->counting = 0;
        lp->deadline = lp->now + (uint64_t) (conf.timeout * LG_NS);

        for (i = 0; i < lp->nconns; i++) {
            c = &lp->conns[i];

            if (c->state == LG_C_OPEN) {
                lg_send_close(lp, c, 1000);
                c->state = LG_C_CLOSING;

            } else if (c->state != LG_C_CLOSING) {
                lg_conn_close_fd(lp, c);
            }
        }

        break;

    default:
        break;
    }
}


/* what this loop sent, for every loop to compute what is expected */

static void
lg_publish_sent(lg_loop_t *lp)
{
    uint32_t  k;

    if (lp->sent_published) {
        return;
    }

    lp->sent_published = 1;

    for (k = 0; k < conf.topics; k++) {
        atomic_fetch_add(&sh.sent_topic[k], lp->sent_topic[k]);
    }
}


static void
lg_advance(lg_loop_t *lp)
{
    for ( ;; ) {

        if (lp->phase == LG_PH_DONE) {
            return;
        }

        if (atomic_load(&sh.stop) && lp->phase < LG_PH_CLOSE) {
            lg_publish_sent(lp);
            lp->wait = NULL;
            lg_enter(lp, LG_PH_CLOSE);
            continue;
        }

        if (lp->wait) {
            if (!atomic_load(&lp->wait->released)) {
                return;
            }

            lp->wait = NULL;
            lg_enter(lp, lg_next_phase(lp->phase));
            continue;
        }

        if (!lg_phase_done(lp)) {
            return;
        }

        if (lp->phase == LG_PH_RUN) {
            lg_publish_sent(lp);
        }

        if (lp->phase == LG_PH_CLOSE) {
            lg_enter(lp, LG_PH_DONE);
            return;
        }

        lg_barrier_arrive(lp, lp->phase);
    }
}


/* the phases that open connections */

static inline int
lg_opening(int phase)
{
    return phase == LG_PH_REGISTER || phase == LG_PH_SUBSCRIBE
           || phase == LG_PH_PUBLISHERS || phase == LG_PH_OPEN;
}


static void
lg_snapshot(lg_loop_t *lp)
{
    pthread_mutex_lock(&sh.mutex);

    lp->snap.phase = lp->phase;
    lp->snap.sent = lp->st.sent;
    lp->snap.acked = lp->st.acked;
    lp->snap.errors = lp->st.errors;
    lp->snap.delivered = lp->st.delivered;
    lp->snap.ready = lp->st.ready;
    lp->snap.open = lp->open;

    pthread_mutex_unlock(&sh.mutex);
}


static void *
lg_loop_run(void *arg)
{
    int                  i, n, phase;
    uint64_t             wake, t;
    lg_loop_t           *lp;
    struct timespec      ts;
    struct epoll_event   events[LG_MAX_EVENTS];

    lp = arg;
    lp->now = lg_now();
    lp->now_read = lp->now;

    lg_enter(lp, conf.connections ? LG_PH_OPEN : LG_PH_REGISTER);

    while (lp->phase != LG_PH_DONE) {

        lp->now = lg_now();

        /* start what is due, publish what is due, then write it all */

        if (lp->next < lp->last) {
            lg_ramp(lp);
        }

        if (lg_opening(lp->phase) && lp->now >= lp->next_sweep) {
            lg_sweep(lp);
            lp->next_sweep = lp->now + LG_SWEEP_NS;
        }

        wake = lp->now + LG_NS;

        if (lp->phase == LG_PH_RUN && lp->wait == NULL) {
            t = atomic_load(&sh.t0);
            wake = lp->now >= t ? lg_publish_tick(lp) : t;
            lp->next_due = wake;
        }

        lg_flush_all(lp);

        phase = lp->phase;
        lg_advance(lp);

        if (lp->phase == LG_PH_DONE) {
            break;
        }

        if (lp->phase != phase) {
            /* a new phase: its work starts right away */
            continue;
        }

        if (lp->now >= lp->next_snap) {
            lg_snapshot(lp);
            lp->next_snap = lp->now + LG_SNAP_NS;
        }

        /* when to wake up at the latest */

        wake = lg_min(wake, lp->next_snap);

        if (lp->wait) {
            wake = lg_min(wake, lp->now + LG_BARRIER_POLL_NS);
        }

        if (lp->next < lp->last) {
            wake = lg_min(wake, lp->now + LG_MS);
        }

        if (lg_opening(lp->phase)) {
            wake = lg_min(wake, lp->next_sweep);
        }

        switch (lp->phase) {
        case LG_PH_DRAIN:
            wake = lg_min(wake, atomic_load(&sh.drain_end));
            break;
        case LG_PH_HOLD:
            wake = lg_min(wake, atomic_load(&sh.hold_end));
            break;
        case LG_PH_CLOSE:
            wake = lg_min(wake, lp->deadline);
            break;
        default:
            break;
        }

        t = lg_now();
        t = wake > t ? wake - t : 0;
        ts.tv_sec = (time_t) (t / LG_NS);
        ts.tv_nsec = (long) (t % LG_NS);

        n = epoll_pwait2(lp->ep, events, LG_MAX_EVENTS, &ts, NULL);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            lg_log("epoll_pwait2: %s", strerror(errno));
            atomic_store(&sh.stop, 1);
            atomic_store(&sh.fatal, 1);
            continue;
        }

        lp->now = lg_now();

        for (i = 0; i < n; i++) {
            lg_on_event(lp, events[i].data.ptr, events[i].events);

            /*
             * Reading a thousand connections can take milliseconds: the
             * publishers are not kept waiting for the end of the batch.
             */

            if ((i & 31) == 31 && lp->phase == LG_PH_RUN && lp->wait == NULL
                && lg_now() >= lp->next_due)
            {
                lp->next_due = lg_publish_tick(lp);
                lg_flush_all(lp);
            }
        }
    }

    lg_snapshot(lp);
    atomic_fetch_add(&sh.done, 1);

    return NULL;
}


/* memory of the nginx workers: VmRSS of every child of the master */

static int
lg_nginx_rss(pid_t master, uint64_t *kb)
{
    int             workers, ppid;
    char            path[300], buf[4096], *p;
    FILE           *f;
    DIR            *d;
    size_t          n;
    uint64_t        v;
    struct dirent  *de;

    *kb = 0;
    workers = 0;

    d = opendir("/proc");
    if (d == NULL) {
        return -1;
    }

    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char) de->d_name[0])) {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);

        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';

        /* pid (comm) state ppid ...: comm may hold spaces and parens */

        p = strrchr(buf, ')');

        if (p == NULL || sscanf(p + 1, " %*c %d", &ppid) != 1
            || ppid != master)
        {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);

        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        while (fgets(buf, sizeof(buf), f)) {
            if (sscanf(buf, "VmRSS: %" SCNu64, &v) == 1) {
                *kb += v;
                workers++;
                break;
            }
        }

        fclose(f);
    }

    closedir(d);

    return workers;
}


/* the progress line, once a second, from the main thread */

static void
lg_progress(uint64_t start, lg_snap_t *prev)
{
    int        phase;
    uint32_t   i;
    uint64_t   now;
    lg_snap_t  s;

    memset(&s, 0, sizeof(s));
    phase = LG_PH_DONE;

    pthread_mutex_lock(&sh.mutex);

    for (i = 0; i < conf.threads; i++) {
        phase = lg_min(phase, loops[i].snap.phase);
        s.sent += loops[i].snap.sent;
        s.acked += loops[i].snap.acked;
        s.errors += loops[i].snap.errors;
        s.delivered += loops[i].snap.delivered;
        s.ready += loops[i].snap.ready;
        s.open += loops[i].snap.open;
    }

    pthread_mutex_unlock(&sh.mutex);

    now = lg_now();

    fprintf(stderr, "loomgen: %6.1fs %-10s open %" PRIu64 " ready %" PRIu64
            " sent %" PRIu64 " (+%" PRIu64 ") acked %" PRIu64
            " errors %" PRIu64 " delivered %" PRIu64 " (+%" PRIu64 ")\n",
            (double) (now - start) / LG_NS, lg_phase_name[phase],
            s.open, s.ready, s.sent, s.sent - prev->sent, s.acked,
            s.errors, s.delivered, s.delivered - prev->delivered);

    *prev = s;
}


/* setup */

static void
lg_usage(FILE *f)
{
    fprintf(f,
"usage: loomgen --port PORT [options]\n"
"\n"
"pub/sub mode (default):\n"
"  --topics K            topics to register (default 1)\n"
"  --subscribers S       subscriber connections, round-robin (default 10)\n"
"  --publishers P        publisher connections, round-robin (default 1)\n"
"  --rate R              messages/s per publisher; 0: as fast as the\n"
"                        window allows (default 10)\n"
"  --window W            unacknowledged publishes per publisher (64)\n"
"  --size B              bytes of a delivery (default 200)\n"
"  --duration S          seconds of publishing (default 10)\n"
"  --drain S             seconds to wait for late deliveries (default 10)\n"
"\n"
"connections-only mode:\n"
"  --connections-only N  open N idle connections, ping each, report\n"
"  --nginx-master PID    sum the VmRSS of this master's children\n"
"  --hold S              seconds to hold them once open (default 0)\n"
"\n"
"common:\n"
"  --host ADDR           server address (default 127.0.0.1)\n"
"  --port PORT           server port\n"
"  --path PATH           WebSocket location (default /ws)\n"
"  --ramp N              new connections per second (default 2000)\n"
"  --max-pending N       handshakes in progress at most (default 500)\n"
"  --retries N           attempts after a failed connect (default 2)\n"
"  --timeout S           to connect, or to close (default 10)\n"
"  --threads N           epoll loops, connections split over them (1)\n"
"  --run ID              names topics bench-ID-k (default: time and pid)\n"
"  --label NAME          the workload name in the report\n"
"  --json FILE           write the results as JSON too\n"
"  --quiet               no progress lines\n");
}


static int
lg_parse_uint(const char *name, const char *s, uint32_t *v)
{
    char                *end;
    unsigned long long   n;

    errno = 0;
    n = strtoull(s, &end, 10);

    if (errno || *end || end == s || n > UINT32_MAX) {
        lg_log("invalid %s \"%s\"", name, s);
        return -1;
    }

    *v = (uint32_t) n;

    return 0;
}


static int
lg_parse_double(const char *name, const char *s, double *v)
{
    char  *end;

    errno = 0;
    *v = strtod(s, &end);

    if (errno || *end || end == s || *v < 0 || !isfinite(*v)) {
        lg_log("invalid %s \"%s\"", name, s);
        return -1;
    }

    return 0;
}


static int
lg_configure(int argc, char **argv)
{
    int                     opt;
    uint32_t                port, pid;
    struct addrinfo         hints, *ai;
    static struct option    opts[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "path", required_argument, NULL, 'u' },
        { "topics", required_argument, NULL, 'k' },
        { "subscribers", required_argument, NULL, 's' },
        { "publishers", required_argument, NULL, 'P' },
        { "rate", required_argument, NULL, 'r' },
        { "window", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 'b' },
        { "duration", required_argument, NULL, 'd' },
        { "drain", required_argument, NULL, 'D' },
        { "ramp", required_argument, NULL, 'R' },
        { "max-pending", required_argument, NULL, 'm' },
        { "retries", required_argument, NULL, 'y' },
        { "timeout", required_argument, NULL, 'T' },
        { "threads", required_argument, NULL, 't' },
        { "connections-only", required_argument, NULL, 'c' },
        { "nginx-master", required_argument, NULL, 'n' },
        { "hold", required_argument, NULL, 'o' },
        { "run", required_argument, NULL, 'i' },
        { "label", required_argument, NULL, 'l' },
        { "json", required_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    conf.host = "127.0.0.1";
    conf.port = 0;
    conf.path = "/ws";
    conf.topics = 1;
    conf.subscribers = 10;
    conf.publishers = 1;
    conf.rate = 10;
    conf.window = 64;
    conf.size = 200;
    conf.duration = 10;
    conf.drain = 10;
    conf.ramp = 2000;
    conf.max_pending = 500;
    conf.retries = 2;
    conf.timeout = 10;
    conf.threads = 1;
    snprintf(conf.run, sizeof(conf.run), "%lx%x",
             (unsigned long) time(NULL), (unsigned) getpid());

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': conf.host = optarg; break;
        case 'p':
            if (lg_parse_uint("port", optarg, &port) || port == 0
                || port > 65535)
            {
                return -1;
            }
            conf.port = (int) port;
            break;
        case 'u': conf.path = optarg; break;
        case 'k':
            if (lg_parse_uint("topics", optarg, &conf.topics)) return -1;
            break;
        case 's':
            if (lg_parse_uint("subscribers", optarg, &conf.subscribers)) {
                return -1;
            }
            break;
        case 'P':
            if (lg_parse_uint("publishers", optarg, &conf.publishers)) {
                return -1;
            }
            break;
        case 'r':
            if (lg_parse_double("rate", optarg, &conf.rate)) return -1;
            break;
        case 'w':
            if (lg_parse_uint("window", optarg, &conf.window)) return -1;
            break;
        case 'b':
            if (lg_parse_uint("size", optarg, &conf.size)) return -1;
            break;
        case 'd':
            if (lg_parse_double("duration", optarg, &conf.duration)) {
                return -1;
            }
            break;
        case 'D':
            if (lg_parse_double("drain", optarg, &conf.drain)) return -1;
            break;
        case 'R':
            if (lg_parse_double("ramp", optarg, &conf.ramp)) return -1;
            break;
        case 'm':
            if (lg_parse_uint("max-pending", optarg, &conf.max_pending)) {
                return -1;
            }
            break;
        case 'y':
            if (lg_parse_uint("retries", optarg, &conf.retries)) return -1;
            break;
        case 'T':
            if (lg_parse_double("timeout", optarg, &conf.timeout)) return -1;
            break;
        case 't':
            if (lg_parse_uint("threads", optarg, &conf.threads)) return -1;
            break;
        case 'c':
            if (lg_parse_uint("connections-only", optarg, &conf.connections))
            {
                return -1;
            }
            break;
        case 'n':
            if (lg_parse_uint("nginx-master", optarg, &pid)) return -1;
            conf.nginx_master = (pid_t) pid;
            break;
        case 'o':
            if (lg_parse_double("hold", optarg, &conf.hold)) return -1;
            break;
        case 'i':
            if (strlen(optarg) >= sizeof(conf.run)
                || strpbrk(optarg, "\"\\") != NULL)
            {
                lg_log("invalid run \"%s\"", optarg);
                return -1;
            }
            snprintf(conf.run, sizeof(conf.run), "%s", optarg);
            break;
        case 'l':
            if (strlen(optarg) > 64 || strpbrk(optarg, "\"\\") != NULL) {
                lg_log("invalid label \"%s\"", optarg);
                return -1;
            }
            conf.label = optarg;
            break;
        case 'j': conf.json = optarg; break;
        case 'q': conf.quiet = 1; break;
        case 'h':
            lg_usage(stdout);
            exit(0);
        default:
            lg_usage(stderr);
            return -1;
        }
    }

    if (optind != argc || conf.port == 0) {
        lg_usage(stderr);
        return -1;
    }

    if (conf.connections == 0
        && (conf.topics == 0 || conf.subscribers + conf.publishers == 0))
    {
        lg_log("nothing to do: topics, subscribers and publishers are 0");
        return -1;
    }

    if (conf.window == 0 || conf.threads == 0 || conf.max_pending == 0
        || conf.ramp <= 0 || conf.retries > 100)
    {
        lg_log("window, threads, max-pending and ramp must be positive");
        return -1;
    }

    if (conf.threads > 64) {
        conf.threads = 64;
    }

    if (conf.size > 60000) {
        lg_log("size must be at most 60000");
        return -1;
    }

    if (conf.label == NULL) {
        conf.label = conf.connections ? "connections" : "pubsub";
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;

    if (getaddrinfo(conf.host, NULL, &hints, &ai) != 0 || ai == NULL) {
        lg_log("cannot resolve \"%s\"", conf.host);
        return -1;
    }

    memcpy(&conf.addr, ai->ai_addr, sizeof(conf.addr));
    conf.addr.sin_port = htons((uint16_t) conf.port);
    freeaddrinfo(ai);

    snprintf(conf.host_header, sizeof(conf.host_header), "%s:%d",
             conf.host, conf.port);

    return 0;
}


static int
lg_raise_nofile(uint64_t need)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        lg_log("getrlimit: %s", strerror(errno));
        return -1;
    }

    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;

        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            lg_log("setrlimit: %s", strerror(errno));
        }
    }

    if (need + 16 + 2 * conf.threads > rl.rlim_cur) {
        lg_log("%" PRIu64 " connections need more descriptors than the "
               "limit of %" PRIu64, need, (uint64_t) rl.rlim_cur);
        return -1;
    }

    return 0;
}


static void *
lg_alloc(size_t size)
{
    void  *p;

    p = calloc(1, size);

    if (p == NULL) {
        lg_log("out of memory");
        exit(2);
    }

    return p;
}


static void
lg_conn_init(lg_conn_t *c, int role, uint32_t index, uint32_t wcap)
{
    c->fd = -1;
    c->role = (uint8_t) role;
    c->index = index;
    c->wcap = wcap;
    c->wbuf = lg_alloc(wcap);
}


/*
 * Everything is allocated here, before any connection opens: connection
 * i of a role goes to loop i % threads.
 */

static void
lg_setup(void)
{
    size_t      frame;
    uint32_t    i, t, k, n, nsub, npub, slots, ring;
    lg_loop_t  *lp;
    lg_conn_t  *c;
    char       *pad;

    loops = lg_alloc(conf.threads * sizeof(lg_loop_t));

    topic_name = lg_alloc((conf.topics + 1) * sizeof(char *));
    topic_name_len = lg_alloc((conf.topics + 1) * sizeof(uint32_t));

    for (k = 0; k < conf.topics; k++) {
        topic_name[k] = lg_alloc(sizeof(conf.run) + 32);
        topic_name_len[k] = (uint32_t) snprintf(topic_name[k],
                                                sizeof(conf.run) + 32,
                                                "bench-%s-%u", conf.run, k);
    }

    sh.sent_topic = lg_alloc((conf.topics + 1) * sizeof(_Atomic uint64_t));

    pad = lg_alloc(conf.size + 1);
    memset(pad, 'x', conf.size);
    pad_bytes = pad;

    /* a publish frame is at most this long */

    frame = 14 + conf.size + 200 + sizeof(conf.run) + 32;

    for (ring = 1; ring < conf.window; ring <<= 1) {
        /* void */
    }

    for (t = 0; t < conf.threads; t++) {
        lp = &loops[t];
        lp->id = (int) t;
        lp->rng = 0x9e3779b97f4a7c15ULL * (t + 1);

        if (getrandom(&lp->rng, sizeof(lp->rng), 0) != sizeof(lp->rng)) {
            lp->rng ^= lg_now() ^ (uint64_t) getpid();
        }

        lp->rng |= 1;

        lp->ep = epoll_create1(EPOLL_CLOEXEC);

        if (lp->ep == -1) {
            lg_log("epoll_create1: %s", strerror(errno));
            exit(2);
        }

        lp->rbuf = lg_alloc(LG_RBUF_SIZE);
        lp->sent_topic = lg_alloc((conf.topics + 1) * sizeof(uint64_t));
        lp->subs_run = lg_alloc((conf.topics + 1) * sizeof(uint32_t));
        lp->subs_live = lg_alloc((conf.topics + 1) * sizeof(uint32_t));
        lg_hist_init(&lp->st.latency);
        lg_hist_init(&lp->st.ack_latency);

        if (conf.connections) {
            n = conf.connections / conf.threads
                + (t < conf.connections % conf.threads);

            lp->nconns = n;
            lp->conns = lg_alloc((n + 1) * sizeof(lg_conn_t));

            for (i = 0; i < n; i++) {
                lg_conn_init(&lp->conns[i], LG_R_IDLE, i * conf.threads + t,
                             LG_SMALL_WBUF);
            }

        } else {
            nsub = conf.subscribers / conf.threads
                   + (t < conf.subscribers % conf.threads);
            npub = conf.publishers / conf.threads
                   + (t < conf.publishers % conf.threads);

            n = (t == 0) + nsub + npub;
            lp->nconns = n;
            lp->conns = lg_alloc((n + 1) * sizeof(lg_conn_t));

            c = lp->conns;

            if (t == 0) {
                lp->ctrl = c;
                lg_conn_init(c, LG_R_CTRL, 0, (uint32_t) (conf.topics
                             * (300 + sizeof(conf.run)) + 1024));
                c++;
            }

            lp->subs = c;
            lp->nsubs = nsub;

            for (i = 0; i < nsub; i++, c++) {
                lg_conn_init(c, LG_R_SUB, i * conf.threads + t,
                             LG_SMALL_WBUF);
                c->topic = c->index % conf.topics;

                /* publishers j with j % K == topic, slot j / K */

                slots = conf.publishers / conf.topics
                        + (c->topic < conf.publishers % conf.topics);
                c->nslots = slots;
                c->slots = lg_alloc((slots + 1) * sizeof(lg_slot_t));
            }

            lp->pubs = c;
            lp->npubs = npub;

            for (i = 0; i < npub; i++, c++) {
                lg_conn_init(c, LG_R_PUB, i * conf.threads + t,
                             (uint32_t) (conf.window * frame + 1024));
                c->topic = c->index % conf.topics;
                c->ring = lg_alloc(ring * sizeof(uint64_t));
                c->ring_mask = ring - 1;

                /* spread the publishers' schedules over one interval */

                if (conf.rate > 0) {
                    c->offset = (uint64_t) ((double) LG_NS / conf.rate
                                            * c->index / conf.publishers);
                }
            }
        }

        lp->dirty = lg_alloc((lp->nconns + 1) * sizeof(lg_conn_t *));
    }
}


/* the report */

typedef struct {
    uint64_t    expected;
    uint64_t    subscribed;
    uint64_t    sent_total;
    double      run_s;
    double      setup_s;
    double      cpu_user;        /* the generator's own CPU time, s */
    double      cpu_sys;
    double      publish_rate;
    double      delivery_rate;
    lg_stats_t  st;
} lg_total_t;


static void
lg_total(lg_total_t *tot)
{
    uint32_t        i, k, j, m;
    uint64_t        t0, sub_k;
    lg_stats_t     *s, *a;
    struct rusage   ru;

    memset(tot, 0, sizeof(lg_total_t));
    a = &tot->st;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        tot->cpu_user = (double) ru.ru_utime.tv_sec
                        + (double) ru.ru_utime.tv_usec / 1e6;
        tot->cpu_sys = (double) ru.ru_stime.tv_sec
                       + (double) ru.ru_stime.tv_usec / 1e6;
    }
    lg_hist_init(&a->latency);
    lg_hist_init(&a->ack_latency);

    for (i = 0; i < conf.threads; i++) {
        s = &loops[i].st;

        a->sent += s->sent;
        a->acked += s->acked;
        a->errors += s->errors;
        a->delivered += s->delivered;
        a->delivered_bytes += s->delivered_bytes;
        a->duplicates += s->duplicates;
        a->out_of_order += s->out_of_order;
        a->misrouted += s->misrouted;
        a->malformed += s->malformed;
        a->unexpected += s->unexpected;
        a->scheduled += s->scheduled;
        a->late += s->late;
        a->lag_max = lg_max(a->lag_max, s->lag_max);
        a->connect_failures += s->connect_failures;
        a->failed += s->failed;
        a->disconnects += s->disconnects;
        a->pings += s->pings;
        a->closed += s->closed;
        a->forced += s->forced;
        a->ready += s->ready;
        a->dead_subs += s->dead_subs;
        a->dead_pubs += s->dead_pubs;
        a->last_delivery = lg_max(a->last_delivery, s->last_delivery);
        a->last_ack = lg_max(a->last_ack, s->last_ack);

        for (j = 0; j < s->ncodes; j++) {
            for (m = 0; m < a->ncodes; m++) {
                if (a->codes[m].code == s->codes[j].code) {
                    break;
                }
            }

            if (m == a->ncodes) {
                if (m == LG_MAX_CODES) {
                    continue;
                }

                a->codes[m].code = s->codes[j].code;
                a->ncodes++;
            }

            a->codes[m].count += s->codes[j].count;
        }

        lg_hist_merge(&a->latency, &s->latency);
        lg_hist_merge(&a->ack_latency, &s->ack_latency);
    }

    for (k = 0; k < conf.topics && !conf.connections; k++) {
        sub_k = 0;

        for (i = 0; i < conf.threads; i++) {
            sub_k += loops[i].subs_run[k];
        }

        tot->subscribed += sub_k;
        tot->expected += sub_k * atomic_load(&sh.sent_topic[k]);
        tot->sent_total += atomic_load(&sh.sent_topic[k]);
    }

    t0 = atomic_load(&sh.t0);

    if (a->last_ack > t0) {
        tot->publish_rate = (double) a->acked * LG_NS
                            / (double) (a->last_ack - t0);
    }

    if (a->last_delivery > t0) {
        tot->delivery_rate = (double) a->delivered * LG_NS
                             / (double) (a->last_delivery - t0);
    }
}


static double
lg_us(uint64_t ns)
{
    return (double) ns / 1000.0;
}


static void
lg_print_hist(FILE *f, const char *name, const lg_hist_t *h)
{
    if (h->count == 0) {
        fprintf(f, "  %-12s none\n", name);
        return;
    }

    fprintf(f, "  %-12s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
            "max %.1f  mean %.1f us  (%" PRIu64 " samples)\n", name,
            lg_us(lg_hist_quantile(h, 0.5)), lg_us(lg_hist_quantile(h, 0.9)),
            lg_us(lg_hist_quantile(h, 0.99)),
            lg_us(lg_hist_quantile(h, 0.999)), lg_us(h->max),
            lg_us(h->sum / h->count), h->count);
}


static void
lg_json_hist(FILE *f, const char *name, const lg_hist_t *h)
{
    fprintf(f, "  \"%s\": {\"count\": %" PRIu64 ", \"min\": %.1f, "
            "\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p99_9\": %.1f, "
            "\"max\": %.1f, \"mean\": %.1f},\n", name, h->count,
            h->count ? lg_us(h->min) : 0.0,
            lg_us(lg_hist_quantile(h, 0.5)), lg_us(lg_hist_quantile(h, 0.9)),
            lg_us(lg_hist_quantile(h, 0.99)),
            lg_us(lg_hist_quantile(h, 0.999)), lg_us(h->max),
            h->count ? lg_us(h->sum / h->count) : 0.0);
}


static void
lg_print_codes(FILE *f, const lg_stats_t *s, int json)
{
    uint32_t  i;

    if (json) {
        fprintf(f, "  \"close_codes\": {");

        for (i = 0; i < s->ncodes; i++) {
            fprintf(f, "%s\"%u\": %" PRIu64, i ? ", " : "", s->codes[i].code,
                    s->codes[i].count);
        }

        fprintf(f, "},\n");
        return;
    }

    fprintf(f, "  close frames from the server:");

    if (s->ncodes == 0) {
        fprintf(f, " none");
    }

    for (i = 0; i < s->ncodes; i++) {
        fprintf(f, " %u x%" PRIu64, s->codes[i].code, s->codes[i].count);
    }

    fprintf(f, "\n");
}


static void
lg_report_pubsub(FILE *f, lg_total_t *t, int json)
{
    int64_t      lost;
    lg_stats_t  *s;

    s = &t->st;
    lost = (int64_t) t->expected - (int64_t) s->delivered;

    if (!json) {
        fprintf(f, "loomgen: %s (run %s)\n", conf.label, conf.run);

        if (atomic_load(&sh.stop)) {
            fprintf(f, "  ABORTED: interrupted or failed, the numbers are "
                    "partial\n");
        }

        fprintf(f, "  setup        %u topics, %" PRIu64 "/%u subscribers, "
                "%u publishers, %.2f s\n", conf.topics, t->subscribed,
                conf.subscribers, conf.publishers, t->setup_s);
        fprintf(f, "  publishing   %.1f s at %s, window %u, %u-byte "
                "deliveries\n", conf.duration,
                conf.rate > 0 ? "a fixed rate" : "full speed", conf.window,
                conf.size);
        if (conf.rate > 0) {
            fprintf(f, "               %.1f msg/s per publisher; scheduled "
                    "%" PRIu64 ", late %" PRIu64 ", max lag %.1f ms\n",
                    conf.rate, s->scheduled, s->late,
                    (double) s->lag_max / LG_MS);
        }
        fprintf(f, "  publishes    sent %" PRIu64 "  acked %" PRIu64
                "  errors %" PRIu64 "  (%.1f acked/s)\n", s->sent, s->acked,
                s->errors, t->publish_rate);
        fprintf(f, "  deliveries   expected %" PRIu64 "  delivered %" PRIu64
                "  lost %" PRId64 "  (%.1f/s)\n", t->expected, s->delivered,
                lost, t->delivery_rate);
        fprintf(f, "               duplicates %" PRIu64 "  out of order %"
                PRIu64 "  misrouted %" PRIu64 "  malformed %" PRIu64
                "  unexpected %" PRIu64 "\n", s->duplicates, s->out_of_order,
                s->misrouted, s->malformed, s->unexpected);
        lg_print_hist(f, "latency", &s->latency);
        lg_print_hist(f, "ack latency", &s->ack_latency);
        fprintf(f, "  connections  failures %" PRIu64 " (given up %" PRIu64
                "), disconnects %" PRIu64 ", subscribers lost %" PRIu64
                ", publishers lost %" PRIu64 ", pings %" PRIu64 "\n",
                s->connect_failures, s->failed, s->disconnects, s->dead_subs,
                s->dead_pubs, s->pings);
        fprintf(f, "  closing      %" PRIu64 " close handshakes completed, %"
                PRIu64 " connections cut at the timeout\n", s->closed,
                s->forced);
        lg_print_codes(f, s, 0);
        fprintf(f, "  loomgen CPU  %.2f s user, %.2f s system\n",
                t->cpu_user, t->cpu_sys);
        return;
    }

    fprintf(f, "{\n");
    fprintf(f, "  \"workload\": \"%s\",\n", conf.label);
    fprintf(f, "  \"mode\": \"pubsub\",\n");
    fprintf(f, "  \"run\": \"%s\",\n", conf.run);
    fprintf(f, "  \"topics\": %u,\n", conf.topics);
    fprintf(f, "  \"subscribers\": %u,\n", conf.subscribers);
    fprintf(f, "  \"publishers\": %u,\n", conf.publishers);
    fprintf(f, "  \"rate_per_publisher\": %.3f,\n", conf.rate);
    fprintf(f, "  \"window\": %u,\n", conf.window);
    fprintf(f, "  \"size\": %u,\n", conf.size);
    fprintf(f, "  \"duration_s\": %.3f,\n", conf.duration);
    fprintf(f, "  \"threads\": %u,\n", conf.threads);
    fprintf(f, "  \"setup_s\": %.3f,\n", t->setup_s);
    fprintf(f, "  \"run_s\": %.3f,\n", t->run_s);
    fprintf(f, "  \"subscribed\": %" PRIu64 ",\n", t->subscribed);
    fprintf(f, "  \"scheduled\": %" PRIu64 ",\n", s->scheduled);
    fprintf(f, "  \"sent\": %" PRIu64 ",\n", s->sent);
    fprintf(f, "  \"acked\": %" PRIu64 ",\n", s->acked);
    fprintf(f, "  \"errors\": %" PRIu64 ",\n", s->errors);
    fprintf(f, "  \"expected\": %" PRIu64 ",\n", t->expected);
    fprintf(f, "  \"delivered\": %" PRIu64 ",\n", s->delivered);
    fprintf(f, "  \"lost\": %" PRId64 ",\n", lost);
    fprintf(f, "  \"duplicates\": %" PRIu64 ",\n", s->duplicates);
    fprintf(f, "  \"out_of_order\": %" PRIu64 ",\n", s->out_of_order);
    fprintf(f, "  \"misrouted\": %" PRIu64 ",\n", s->misrouted);
    fprintf(f, "  \"malformed\": %" PRIu64 ",\n", s->malformed);
    fprintf(f, "  \"unexpected\": %" PRIu64 ",\n", s->unexpected);
    fprintf(f, "  \"publishes_per_s\": %.1f,\n", t->publish_rate);
    fprintf(f, "  \"deliveries_per_s\": %.1f,\n", t->delivery_rate);
    fprintf(f, "  \"delivery_bytes_mean\": %.1f,\n", s->delivered
            ? (double) s->delivered_bytes / (double) s->delivered : 0.0);
    fprintf(f, "  \"late\": %" PRIu64 ",\n", s->late);
    fprintf(f, "  \"lag_max_ms\": %.3f,\n", (double) s->lag_max / LG_MS);
    lg_json_hist(f, "latency_us", &s->latency);
    lg_json_hist(f, "ack_latency_us", &s->ack_latency);
    lg_print_codes(f, s, 1);
    fprintf(f, "  \"connect_failures\": %" PRIu64 ",\n", s->connect_failures);
    fprintf(f, "  \"failed_connections\": %" PRIu64 ",\n", s->failed);
    fprintf(f, "  \"disconnects\": %" PRIu64 ",\n", s->disconnects);
    fprintf(f, "  \"subscribers_lost\": %" PRIu64 ",\n", s->dead_subs);
    fprintf(f, "  \"publishers_lost\": %" PRIu64 ",\n", s->dead_pubs);
    fprintf(f, "  \"pings\": %" PRIu64 ",\n", s->pings);
    fprintf(f, "  \"closed_cleanly\": %" PRIu64 ",\n", s->closed);
    fprintf(f, "  \"closed_at_timeout\": %" PRIu64 ",\n", s->forced);
    fprintf(f, "  \"cpu_user_s\": %.3f,\n", t->cpu_user);
    fprintf(f, "  \"cpu_system_s\": %.3f,\n", t->cpu_sys);
    fprintf(f, "  \"aborted\": %s\n", atomic_load(&sh.stop) ? "true"
                                                             : "false");
    fprintf(f, "}\n");
}


static void
lg_report_connections(FILE *f, lg_total_t *t, int json)
{
    double       per;
    uint64_t     held;
    lg_stats_t  *s;

    s = &t->st;
    held = s->ready;
    per = (held && sh.rss_after >= sh.rss_before)
          ? (double) (sh.rss_after - sh.rss_before) * 1024 / (double) held
          : 0.0;

    if (!json) {
        fprintf(f, "loomgen: %s\n", conf.label);

        if (atomic_load(&sh.stop)) {
            fprintf(f, "  ABORTED: interrupted or failed, the numbers are "
                    "partial\n");
        }

        fprintf(f, "  connections  %" PRIu64 "/%u held and answering pings, "
                "opened in %.2f s\n", held, conf.connections, t->setup_s);
        fprintf(f, "               failures %" PRIu64 " (given up %" PRIu64
                "), disconnects %" PRIu64 "\n", s->connect_failures,
                s->failed, s->disconnects);
        fprintf(f, "  closing      %" PRIu64 " close handshakes completed, %"
                PRIu64 " connections cut at the timeout\n", s->closed,
                s->forced);

        if (conf.nginx_master) {
            fprintf(f, "  nginx RSS    %" PRIu64 " kB before, %" PRIu64
                    " kB after (%d workers): %.0f bytes per connection\n",
                    sh.rss_before, sh.rss_after, sh.workers_after, per);
        }

        lg_print_codes(f, s, 0);
        return;
    }

    fprintf(f, "{\n");
    fprintf(f, "  \"workload\": \"%s\",\n", conf.label);
    fprintf(f, "  \"mode\": \"connections\",\n");
    fprintf(f, "  \"threads\": %u,\n", conf.threads);
    fprintf(f, "  \"requested\": %u,\n", conf.connections);
    fprintf(f, "  \"held\": %" PRIu64 ",\n", held);
    fprintf(f, "  \"setup_s\": %.3f,\n", t->setup_s);
    fprintf(f, "  \"connect_failures\": %" PRIu64 ",\n", s->connect_failures);
    fprintf(f, "  \"failed_connections\": %" PRIu64 ",\n", s->failed);
    fprintf(f, "  \"disconnects\": %" PRIu64 ",\n", s->disconnects);
    lg_print_codes(f, s, 1);
    fprintf(f, "  \"nginx_workers\": %d,\n", sh.workers_after);
    fprintf(f, "  \"rss_before_kb\": %" PRIu64 ",\n", sh.rss_before);
    fprintf(f, "  \"rss_after_kb\": %" PRIu64 ",\n", sh.rss_after);
    fprintf(f, "  \"rss_per_connection_bytes\": %.0f,\n", per);
    fprintf(f, "  \"closed_cleanly\": %" PRIu64 ",\n", s->closed);
    fprintf(f, "  \"closed_at_timeout\": %" PRIu64 ",\n", s->forced);
    fprintf(f, "  \"cpu_user_s\": %.3f,\n", t->cpu_user);
    fprintf(f, "  \"cpu_system_s\": %.3f,\n", t->cpu_sys);
    fprintf(f, "  \"aborted\": %s\n", atomic_load(&sh.stop) ? "true"
                                                             : "false");
    fprintf(f, "}\n");
}


static void
lg_on_signal(int signo)
{
    (void) signo;
    atomic_store(&sh.stop, 1);
}


int
main(int argc, char **argv)
{
    int               rc;
    FILE             *f;
    uint32_t          t;
    uint64_t          start, next;
    lg_snap_t         prev;
    lg_total_t        tot;
    struct timespec   ts;
    struct sigaction  sa;

    if (lg_configure(argc, argv) != 0) {
        return 1;
    }

    if (lg_raise_nofile(conf.connections ? conf.connections
                        : (uint64_t) conf.subscribers + conf.publishers + 1)
        != 0)
    {
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = lg_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    pthread_mutex_init(&sh.mutex, NULL);

    lg_setup();

    if (conf.connections && conf.nginx_master) {
        sh.workers_before = lg_nginx_rss(conf.nginx_master, &sh.rss_before);

        if (sh.workers_before <= 0) {
            lg_log("no children of nginx master %d", (int) conf.nginx_master);
            return 1;
        }
    }

    start = lg_now();

    for (t = 0; t < conf.threads; t++) {
        if (pthread_create(&loops[t].thread, NULL, lg_loop_run, &loops[t])
            != 0)
        {
            lg_log("pthread_create failed");
            return 2;
        }
    }

    /* the main thread only prints progress */

    memset(&prev, 0, sizeof(prev));
    next = start + LG_NS;

    while (atomic_load(&sh.done) < conf.threads) {
        ts.tv_sec = 0;
        ts.tv_nsec = 50 * LG_MS;
        nanosleep(&ts, NULL);

        if (!conf.quiet && lg_now() >= next) {
            lg_progress(start, &prev);
            next += LG_NS;
        }
    }

    for (t = 0; t < conf.threads; t++) {
        pthread_join(loops[t].thread, NULL);
    }

    lg_total(&tot);

    if (conf.connections && conf.nginx_master
        && sh.workers_after != sh.workers_before)
    {
        lg_log("nginx had %d workers before, %d after", sh.workers_before,
               sh.workers_after);
    }

    tot.setup_s = sh.setup_end > start
                  ? (double) (sh.setup_end - start) / LG_NS : 0.0;

    if (atomic_load(&sh.run_end) > atomic_load(&sh.t0)) {
        tot.run_s = (double) (atomic_load(&sh.run_end)
                              - atomic_load(&sh.t0)) / LG_NS;
    }

    rc = atomic_load(&sh.fatal) ? 2 : (atomic_load(&sh.stop) ? 1 : 0);

    if (conf.connections) {
        lg_report_connections(stdout, &tot, 0);

    } else {
        lg_report_pubsub(stdout, &tot, 0);
    }

    if (conf.json) {
        f = fopen(conf.json, "w");

        if (f == NULL) {
            lg_log("cannot write \"%s\": %s", conf.json, strerror(errno));
            return 2;
        }

        if (conf.connections) {
            lg_report_connections(f, &tot, 1);

        } else {
            lg_report_pubsub(f, &tot, 1);
        }

        if (fclose(f) != 0) {
            lg_log("cannot write \"%s\": %s", conf.json, strerror(errno));
            return 2;
        }
    }

    return rc;
}
