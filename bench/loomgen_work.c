/*
 * Copyright (C) Data Loom
 */


/*
 * The workloads, as phases every loop goes through (register, subscribe,
 * open the publishers, run, drain, close; or open, hold, close), each
 * ending at a barrier shared by the loops; publishing on schedule or
 * within the window; and the epoll loop of a thread.
 */

#include "loomgen.h"

#include <errno.h>
#include <math.h>
#include <sys/epoll.h>


/* barriers: loops keep serving their connections while they wait */

static void
lg_barrier_arrive(lg_loop_t *lp, int phase)
{
    uint64_t       now;
    lg_barrier_t  *b;

    b = &lg_sh.bar[phase];
    lp->wait = b;

    if (atomic_fetch_add(&b->arrived, 1) + 1 < lg_conf.threads) {
        return;
    }

    /* the last loop to arrive does what comes between two phases */

    now = lg_now();

    switch (phase) {

    case LG_PH_PUBLISHERS:
        lg_sh.setup_end = now;
        atomic_store(&lg_sh.t0, now + LG_START_DELAY_NS);
        atomic_store(&lg_sh.t_end, now + LG_START_DELAY_NS
                                   + (uint64_t) (lg_conf.duration * LG_NS));
        break;

    case LG_PH_RUN:
        atomic_store(&lg_sh.drain_end,
                     lg_max(now, atomic_load(&lg_sh.t_end))
                     + (uint64_t) (lg_conf.drain * LG_NS));
        break;

    case LG_PH_DRAIN:
        atomic_store(&lg_sh.run_end, now);
        break;

    case LG_PH_OPEN:
        lg_sh.setup_end = now;

        if (lg_conf.nginx_master) {
            lg_sh.workers_after = lg_nginx_rss(lg_conf.nginx_master,
                                               &lg_sh.rss_after);
        }

        atomic_store(&lg_sh.hold_end, lg_now()
                                      + (uint64_t) (lg_conf.hold * LG_NS));
        break;

    default:
        break;
    }

    atomic_store(&b->released, 1);
}


/* the ramp opens connections at --ramp per second, split over loops */

static void
lg_ramp(lg_loop_t *lp)
{
    uint64_t  allowed;

    allowed = (uint64_t) ((double) (lp->now - lp->ramp_start)
                          * lp->ramp_rate / LG_NS) + 1;

    while (lp->next < lp->last
           && lp->next - lp->first < allowed
           && lp->pending < lg_conf.max_pending)
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

    limit = (uint64_t) (lg_conf.timeout * LG_NS);

    for (i = lp->first; i < lp->next; i++) {
        c = &lp->conns[i];

        if (c->ready) {
            continue;
        }

        if (c->state == LG_C_RETRY) {
            if (lp->now >= c->started && lp->pending < lg_conf.max_pending) {
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

    t0 = atomic_load(&lg_sh.t0);
    t_end = atomic_load(&lg_sh.t_end);
    wake = t_end;

    interval = lg_conf.rate > 0 ? (double) LG_NS / lg_conf.rate : 0;

    for (i = 0; i < lp->npubs; i++) {
        c = &lp->pubs[i];

        if (c->state != LG_C_OPEN || !c->ready) {
            continue;
        }

        now = lg_now();

        while (c->seq - c->acks < lg_conf.window && now < t_end) {

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

    if (lg_conf.rate <= 0) {
        return c->seq;
    }

    t0 = atomic_load(&lg_sh.t0);
    t_end = atomic_load(&lg_sh.t_end);
    interval = (double) LG_NS / lg_conf.rate;

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

    for (k = 0; k < lg_conf.topics; k++) {
        expected += (uint64_t) lp->subs_live[k]
                    * atomic_load(&lg_sh.sent_topic[k]);
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
        return lp->now >= atomic_load(&lg_sh.t_end);

    case LG_PH_DRAIN:
        return lp->now >= atomic_load(&lg_sh.drain_end) || lg_drained(lp);

    case LG_PH_HOLD:
        return lp->now >= atomic_load(&lg_sh.hold_end);

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
    if (lg_conf.connections) {
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
    lp->ramp_rate = lg_conf.ramp / lg_conf.threads;
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
        for (k = 0; k < lg_conf.topics; k++) {
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
        lp->deadline = lp->now + (uint64_t) (lg_conf.timeout * LG_NS);

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

    for (k = 0; k < lg_conf.topics; k++) {
        atomic_fetch_add(&lg_sh.sent_topic[k], lp->sent_topic[k]);
    }
}


static void
lg_advance(lg_loop_t *lp)
{
    for ( ;; ) {

        if (lp->phase == LG_PH_DONE) {
            return;
        }

        if (atomic_load(&lg_sh.stop) && lp->phase < LG_PH_CLOSE) {
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
    pthread_mutex_lock(&lg_sh.mutex);

    lp->snap.phase = lp->phase;
    lp->snap.sent = lp->st.sent;
    lp->snap.acked = lp->st.acked;
    lp->snap.errors = lp->st.errors;
    lp->snap.delivered = lp->st.delivered;
    lp->snap.ready = lp->st.ready;
    lp->snap.open = lp->open;

    pthread_mutex_unlock(&lg_sh.mutex);
}


void *
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

    lg_enter(lp, lg_conf.connections ? LG_PH_OPEN : LG_PH_REGISTER);

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
            t = atomic_load(&lg_sh.t0);
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
            wake = lg_min(wake, atomic_load(&lg_sh.drain_end));
            break;
        case LG_PH_HOLD:
            wake = lg_min(wake, atomic_load(&lg_sh.hold_end));
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
            atomic_store(&lg_sh.stop, 1);
            atomic_store(&lg_sh.fatal, 1);
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
    atomic_fetch_add(&lg_sh.done, 1);

    return NULL;
}
