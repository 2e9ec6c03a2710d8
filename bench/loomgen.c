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
 *
 * The files, one concern each (loomgen.h declares what crosses them):
 *
 *   loomgen.c          the command line, setup, the main thread
 *   loomgen_ws.c       the WebSocket codec: handshake, frames, masking
 *   loomgen_proto.c    the broker's JSON messages, built and scanned
 *   loomgen_conn.c     the connection state machine on epoll
 *   loomgen_work.c     the workloads: phases, barriers, pacing, the loop
 *   loomgen_report.c   totals and the report, text and JSON
 *   loomgen_hist.h     the latency histogram
 *   loomgen_sha1.c     SHA-1 and base64 for the handshake (refcast too)
 */

#include "loomgen.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>


lg_conf_t            lg_conf;
lg_shared_t          lg_sh;
lg_loop_t           *lg_loops;
char               **lg_topic_name;
uint32_t            *lg_topic_name_len;
const char          *lg_pad_bytes;


void
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

void
lg_print_problem(const char *what, const u_char *p, size_t len)
{
    size_t  i, n;
    char    text[301];

    if (atomic_fetch_add(&lg_sh.printed, 1) >= LG_PRINT_ERRORS) {
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
"  --json-schema         register the topics with a JSON Schema of ten\n"
"                        properties (nested types, a pattern) that the\n"
"                        publishes match, instead of a key-set schema\n"
"\n"
"connections-only mode:\n"
"  --connections-only N  open N idle connections, ping each, report\n"
"  --nginx-master PID    sum the VmRSS of this master's children\n"
"  --hold S              seconds to hold them once open (default 0)\n"
"\n"
"revision modes (dataloom.v2, one thread):\n"
"  --catch-up N          N publishes to a topic keeping N revisions, then\n"
"                        one subscriber resumes from rev 0: messages/s of\n"
"                        the replay, then 1,000 more must follow live\n"
"  --snapshots K         K subscribes with snapshot at once while --rate\n"
"                        publishes/s go on: answer times, no gap after\n"
"\n"
"common:\n"
"  --host ADDR           server address (default 127.0.0.1)\n"
"  --port PORT           server port\n"
"  --path PATH           WebSocket location (default /ws)\n"
"  --header 'N: V'       one more handshake header (a credential)\n"
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
        { "header", required_argument, NULL, 'A' },
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
        { "catch-up", required_argument, NULL, 'C' },
        { "snapshots", required_argument, NULL, 'S' },
        { "nginx-master", required_argument, NULL, 'n' },
        { "hold", required_argument, NULL, 'o' },
        { "run", required_argument, NULL, 'i' },
        { "label", required_argument, NULL, 'l' },
        { "json", required_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "json-schema", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    lg_conf.host = "127.0.0.1";
    lg_conf.port = 0;
    lg_conf.path = "/ws";
    lg_conf.topics = 1;
    lg_conf.subscribers = 10;
    lg_conf.publishers = 1;
    lg_conf.rate = 10;
    lg_conf.window = 64;
    lg_conf.size = 200;
    lg_conf.duration = 10;
    lg_conf.drain = 10;
    lg_conf.ramp = 2000;
    lg_conf.max_pending = 500;
    lg_conf.retries = 2;
    lg_conf.timeout = 10;
    lg_conf.threads = 1;
    snprintf(lg_conf.run, sizeof(lg_conf.run), "%lx%x",
             (unsigned long) time(NULL), (unsigned) getpid());

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': lg_conf.host = optarg; break;
        case 'p':
            if (lg_parse_uint("port", optarg, &port) || port == 0
                || port > 65535)
            {
                return -1;
            }
            lg_conf.port = (int) port;
            break;
        case 'u': lg_conf.path = optarg; break;
        case 'A': lg_conf.header = optarg; break;
        case 'k':
            if (lg_parse_uint("topics", optarg, &lg_conf.topics)) return -1;
            break;
        case 's':
            if (lg_parse_uint("subscribers", optarg, &lg_conf.subscribers)) {
                return -1;
            }
            break;
        case 'P':
            if (lg_parse_uint("publishers", optarg, &lg_conf.publishers)) {
                return -1;
            }
            break;
        case 'r':
            if (lg_parse_double("rate", optarg, &lg_conf.rate)) return -1;
            break;
        case 'w':
            if (lg_parse_uint("window", optarg, &lg_conf.window)) return -1;
            break;
        case 'b':
            if (lg_parse_uint("size", optarg, &lg_conf.size)) return -1;
            break;
        case 'd':
            if (lg_parse_double("duration", optarg, &lg_conf.duration)) {
                return -1;
            }
            break;
        case 'D':
            if (lg_parse_double("drain", optarg, &lg_conf.drain)) return -1;
            break;
        case 'R':
            if (lg_parse_double("ramp", optarg, &lg_conf.ramp)) return -1;
            break;
        case 'm':
            if (lg_parse_uint("max-pending", optarg, &lg_conf.max_pending)) {
                return -1;
            }
            break;
        case 'y':
            if (lg_parse_uint("retries", optarg, &lg_conf.retries)) return -1;
            break;
        case 'T':
            if (lg_parse_double("timeout", optarg, &lg_conf.timeout)) return -1;
            break;
        case 't':
            if (lg_parse_uint("threads", optarg, &lg_conf.threads)) return -1;
            break;
        case 'c':
            if (lg_parse_uint("connections-only", optarg, &lg_conf.connections))
            {
                return -1;
            }
            break;
        case 'C':
            if (lg_parse_uint("catch-up", optarg, &lg_conf.catch_up)) {
                return -1;
            }
            break;
        case 'S':
            if (lg_parse_uint("snapshots", optarg, &lg_conf.snapshots)) {
                return -1;
            }
            break;
        case 'n':
            if (lg_parse_uint("nginx-master", optarg, &pid)) return -1;
            lg_conf.nginx_master = (pid_t) pid;
            break;
        case 'o':
            if (lg_parse_double("hold", optarg, &lg_conf.hold)) return -1;
            break;
        case 'i':
            if (strlen(optarg) >= sizeof(lg_conf.run)
                || strpbrk(optarg, "\"\\") != NULL)
            {
                lg_log("invalid run \"%s\"", optarg);
                return -1;
            }
            snprintf(lg_conf.run, sizeof(lg_conf.run), "%s", optarg);
            break;
        case 'l':
            if (strlen(optarg) > 64 || strpbrk(optarg, "\"\\") != NULL) {
                lg_log("invalid label \"%s\"", optarg);
                return -1;
            }
            lg_conf.label = optarg;
            break;
        case 'j': lg_conf.json = optarg; break;
        case 'q': lg_conf.quiet = 1; break;
        case 'J': lg_conf.json_schema = 1; break;
        case 'h':
            lg_usage(stdout);
            exit(0);
        default:
            lg_usage(stderr);
            return -1;
        }
    }

    if (optind != argc || lg_conf.port == 0) {
        lg_usage(stderr);
        return -1;
    }

    if (lg_conf.connections == 0
        && (lg_conf.topics == 0
            || lg_conf.subscribers + lg_conf.publishers == 0))
    {
        lg_log("nothing to do: topics, subscribers and publishers are 0");
        return -1;
    }

    if (lg_conf.window == 0 || lg_conf.threads == 0 || lg_conf.max_pending == 0
        || lg_conf.ramp <= 0 || lg_conf.retries > 100)
    {
        lg_log("window, threads, max-pending and ramp must be positive");
        return -1;
    }

    if (lg_conf.threads > 64) {
        lg_conf.threads = 64;
    }

    if (lg_conf.size > 60000) {
        lg_log("size must be at most 60000");
        return -1;
    }

    if (lg_conf.label == NULL) {
        lg_conf.label = lg_conf.connections ? "connections" : "pubsub";
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;

    if (getaddrinfo(lg_conf.host, NULL, &hints, &ai) != 0 || ai == NULL) {
        lg_log("cannot resolve \"%s\"", lg_conf.host);
        return -1;
    }

    memcpy(&lg_conf.addr, ai->ai_addr, sizeof(lg_conf.addr));
    lg_conf.addr.sin_port = htons((uint16_t) lg_conf.port);
    freeaddrinfo(ai);

    snprintf(lg_conf.host_header, sizeof(lg_conf.host_header), "%s:%d",
             lg_conf.host, lg_conf.port);

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

    if (need + 16 + 2 * lg_conf.threads > rl.rlim_cur) {
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

    lg_loops = lg_alloc(lg_conf.threads * sizeof(lg_loop_t));

    lg_topic_name = lg_alloc((lg_conf.topics + 1) * sizeof(char *));
    lg_topic_name_len = lg_alloc((lg_conf.topics + 1) * sizeof(uint32_t));

    for (k = 0; k < lg_conf.topics; k++) {
        lg_topic_name[k] = lg_alloc(sizeof(lg_conf.run) + 32);
        lg_topic_name_len[k] = (uint32_t) snprintf(lg_topic_name[k],
                                        sizeof(lg_conf.run) + 32,
                                        "bench-%s-%u", lg_conf.run, k);
    }

    lg_sh.sent_topic = lg_alloc((lg_conf.topics + 1)
                                * sizeof(_Atomic uint64_t));

    pad = lg_alloc(lg_conf.size + 1);
    memset(pad, 'x', lg_conf.size);
    lg_pad_bytes = pad;

    /* a publish frame is at most this long */

    frame = 14 + lg_conf.size + 200 + sizeof(lg_conf.run) + 32;

    for (ring = 1; ring < lg_conf.window; ring <<= 1) {
        /* void */
    }

    for (t = 0; t < lg_conf.threads; t++) {
        lp = &lg_loops[t];
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
        lp->sent_topic = lg_alloc((lg_conf.topics + 1) * sizeof(uint64_t));
        lp->subs_run = lg_alloc((lg_conf.topics + 1) * sizeof(uint32_t));
        lp->subs_live = lg_alloc((lg_conf.topics + 1) * sizeof(uint32_t));
        lg_hist_init(&lp->st.latency);
        lg_hist_init(&lp->st.ack_latency);

        if (lg_conf.connections) {
            n = lg_conf.connections / lg_conf.threads
                + (t < lg_conf.connections % lg_conf.threads);

            lp->nconns = n;
            lp->conns = lg_alloc((n + 1) * sizeof(lg_conn_t));

            for (i = 0; i < n; i++) {
                lg_conn_init(&lp->conns[i], LG_R_IDLE, i * lg_conf.threads + t,
                             LG_SMALL_WBUF);
            }

        } else {
            nsub = lg_conf.subscribers / lg_conf.threads
                   + (t < lg_conf.subscribers % lg_conf.threads);
            npub = lg_conf.publishers / lg_conf.threads
                   + (t < lg_conf.publishers % lg_conf.threads);

            n = (t == 0) + nsub + npub;
            lp->nconns = n;
            lp->conns = lg_alloc((n + 1) * sizeof(lg_conn_t));

            c = lp->conns;

            if (t == 0) {
                lp->ctrl = c;
                /* room for every registerTopic, JSON Schema or not */
                lg_conn_init(c, LG_R_CTRL, 0, (uint32_t) (lg_conf.topics
                             * (1400 + sizeof(lg_conf.run)) + 1024));
                c++;
            }

            lp->subs = c;
            lp->nsubs = nsub;

            for (i = 0; i < nsub; i++, c++) {
                lg_conn_init(c, LG_R_SUB, i * lg_conf.threads + t,
                             LG_SMALL_WBUF);
                c->topic = c->index % lg_conf.topics;

                /* publishers j with j % K == topic, slot j / K */

                slots = lg_conf.publishers / lg_conf.topics
                        + (c->topic < lg_conf.publishers % lg_conf.topics);
                c->nslots = slots;
                c->slots = lg_alloc((slots + 1) * sizeof(lg_slot_t));
            }

            lp->pubs = c;
            lp->npubs = npub;

            for (i = 0; i < npub; i++, c++) {
                lg_conn_init(c, LG_R_PUB, i * lg_conf.threads + t,
                             (uint32_t) (lg_conf.window * frame + 1024));
                c->topic = c->index % lg_conf.topics;
                c->ring = lg_alloc(ring * sizeof(uint64_t));
                c->ring_mask = ring - 1;

                /* spread the publishers' schedules over one interval */

                if (lg_conf.rate > 0) {
                    c->offset = (uint64_t) ((double) LG_NS / lg_conf.rate
                                            * c->index / lg_conf.publishers);
                }
            }
        }

        lp->dirty = lg_alloc((lp->nconns + 1) * sizeof(lg_conn_t *));
    }
}


static void
lg_on_signal(int signo)
{
    (void) signo;
    atomic_store(&lg_sh.stop, 1);
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

    if (lg_conf.catch_up || lg_conf.snapshots) {
        if (lg_raise_nofile((uint64_t) lg_conf.snapshots + 2) != 0) {
            return 1;
        }

        signal(SIGPIPE, SIG_IGN);

        return lg_replay_main();
    }

    if (lg_raise_nofile(lg_conf.connections
                        ? lg_conf.connections
                        : (uint64_t) lg_conf.subscribers
                          + lg_conf.publishers + 1)
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

    pthread_mutex_init(&lg_sh.mutex, NULL);

    lg_setup();

    if (lg_conf.connections && lg_conf.nginx_master) {
        lg_sh.workers_before = lg_nginx_rss(lg_conf.nginx_master,
                                            &lg_sh.rss_before);

        if (lg_sh.workers_before <= 0) {
            lg_log("no children of nginx master %d",
                   (int) lg_conf.nginx_master);
            return 1;
        }
    }

    start = lg_now();

    for (t = 0; t < lg_conf.threads; t++) {
        if (pthread_create(&lg_loops[t].thread, NULL, lg_loop_run, &lg_loops[t])
            != 0)
        {
            lg_log("pthread_create failed");
            return 2;
        }
    }

    /* the main thread only prints progress */

    memset(&prev, 0, sizeof(prev));
    next = start + LG_NS;

    while (atomic_load(&lg_sh.done) < lg_conf.threads) {
        ts.tv_sec = 0;
        ts.tv_nsec = 50 * LG_MS;
        nanosleep(&ts, NULL);

        if (!lg_conf.quiet && lg_now() >= next) {
            lg_progress(start, &prev);
            next += LG_NS;
        }
    }

    for (t = 0; t < lg_conf.threads; t++) {
        pthread_join(lg_loops[t].thread, NULL);
    }

    lg_total(&tot);

    if (lg_conf.connections && lg_conf.nginx_master
        && lg_sh.workers_after != lg_sh.workers_before)
    {
        lg_log("nginx had %d workers before, %d after", lg_sh.workers_before,
               lg_sh.workers_after);
    }

    tot.setup_s = lg_sh.setup_end > start
                  ? (double) (lg_sh.setup_end - start) / LG_NS : 0.0;

    if (atomic_load(&lg_sh.run_end) > atomic_load(&lg_sh.t0)) {
        tot.run_s = (double) (atomic_load(&lg_sh.run_end)
                              - atomic_load(&lg_sh.t0)) / LG_NS;
    }

    rc = atomic_load(&lg_sh.fatal) ? 2 : (atomic_load(&lg_sh.stop) ? 1 : 0);

    if (lg_conf.connections) {
        lg_report_connections(stdout, &tot, 0);

    } else {
        lg_report_pubsub(stdout, &tot, 0);
    }

    if (lg_conf.json) {
        f = fopen(lg_conf.json, "w");

        if (f == NULL) {
            lg_log("cannot write \"%s\": %s", lg_conf.json, strerror(errno));
            return 2;
        }

        if (lg_conf.connections) {
            lg_report_connections(f, &tot, 1);

        } else {
            lg_report_pubsub(f, &tot, 1);
        }

        if (fclose(f) != 0) {
            lg_log("cannot write \"%s\": %s", lg_conf.json, strerror(errno));
            return 2;
        }
    }

    return rc;
}
