/*
 * Copyright (C) Data Loom
 */


/*
 * What is measured besides the traffic (the nginx workers' memory), the
 * progress line, the totals over the loops, and the report, as text and
 * as JSON.
 */

#include "loomgen.h"

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <sys/resource.h>


static const char *lg_phase_name[] = {
    "register", "subscribe", "publishers", "run", "drain", "open", "hold",
    "close", "done"
};


/* memory of the nginx workers: VmRSS of every child of the master */

int
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

void
lg_progress(uint64_t start, lg_snap_t *prev)
{
    int        phase;
    uint32_t   i;
    uint64_t   now;
    lg_snap_t  s;

    memset(&s, 0, sizeof(s));
    phase = LG_PH_DONE;

    pthread_mutex_lock(&lg_sh.mutex);

    for (i = 0; i < lg_conf.threads; i++) {
        phase = lg_min(phase, lg_loops[i].snap.phase);
        s.sent += lg_loops[i].snap.sent;
        s.acked += lg_loops[i].snap.acked;
        s.errors += lg_loops[i].snap.errors;
        s.delivered += lg_loops[i].snap.delivered;
        s.ready += lg_loops[i].snap.ready;
        s.open += lg_loops[i].snap.open;
    }

    pthread_mutex_unlock(&lg_sh.mutex);

    now = lg_now();

    fprintf(stderr, "loomgen: %6.1fs %-10s open %" PRIu64 " ready %" PRIu64
            " sent %" PRIu64 " (+%" PRIu64 ") acked %" PRIu64
            " errors %" PRIu64 " delivered %" PRIu64 " (+%" PRIu64 ")\n",
            (double) (now - start) / LG_NS, lg_phase_name[phase],
            s.open, s.ready, s.sent, s.sent - prev->sent, s.acked,
            s.errors, s.delivered, s.delivered - prev->delivered);

    *prev = s;
}


/* the report */


void
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

    for (i = 0; i < lg_conf.threads; i++) {
        s = &lg_loops[i].st;

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

    for (k = 0; k < lg_conf.topics && !lg_conf.connections; k++) {
        sub_k = 0;

        for (i = 0; i < lg_conf.threads; i++) {
            sub_k += lg_loops[i].subs_run[k];
        }

        tot->subscribed += sub_k;
        tot->expected += sub_k * atomic_load(&lg_sh.sent_topic[k]);
        tot->sent_total += atomic_load(&lg_sh.sent_topic[k]);
    }

    t0 = atomic_load(&lg_sh.t0);

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


void
lg_report_pubsub(FILE *f, lg_total_t *t, int json)
{
    int64_t      lost;
    lg_stats_t  *s;

    s = &t->st;
    lost = (int64_t) t->expected - (int64_t) s->delivered;

    if (!json) {
        fprintf(f, "loomgen: %s (run %s)\n", lg_conf.label, lg_conf.run);

        if (atomic_load(&lg_sh.stop)) {
            fprintf(f, "  ABORTED: interrupted or failed, the numbers are "
                    "partial\n");
        }

        fprintf(f, "  setup        %u topics, %" PRIu64 "/%u subscribers, "
                "%u publishers, %.2f s\n", lg_conf.topics, t->subscribed,
                lg_conf.subscribers, lg_conf.publishers, t->setup_s);
        fprintf(f, "  publishing   %.1f s at %s, window %u, %u-byte "
                "deliveries\n", lg_conf.duration,
                lg_conf.rate > 0 ? "a fixed rate" : "full speed",
                lg_conf.window, lg_conf.size);
        if (lg_conf.rate > 0) {
            fprintf(f, "               %.1f msg/s per publisher; scheduled "
                    "%" PRIu64 ", late %" PRIu64 ", max lag %.1f ms\n",
                    lg_conf.rate, s->scheduled, s->late,
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
    fprintf(f, "  \"workload\": \"%s\",\n", lg_conf.label);
    fprintf(f, "  \"mode\": \"pubsub\",\n");
    fprintf(f, "  \"run\": \"%s\",\n", lg_conf.run);
    fprintf(f, "  \"topics\": %u,\n", lg_conf.topics);
    fprintf(f, "  \"subscribers\": %u,\n", lg_conf.subscribers);
    fprintf(f, "  \"publishers\": %u,\n", lg_conf.publishers);
    fprintf(f, "  \"rate_per_publisher\": %.3f,\n", lg_conf.rate);
    fprintf(f, "  \"window\": %u,\n", lg_conf.window);
    fprintf(f, "  \"size\": %u,\n", lg_conf.size);
    fprintf(f, "  \"duration_s\": %.3f,\n", lg_conf.duration);
    fprintf(f, "  \"threads\": %u,\n", lg_conf.threads);
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
    fprintf(f, "  \"aborted\": %s\n",
            atomic_load(&lg_sh.stop) ? "true" : "false");
    fprintf(f, "}\n");
}


void
lg_report_connections(FILE *f, lg_total_t *t, int json)
{
    double       per;
    uint64_t     held;
    lg_stats_t  *s;

    s = &t->st;
    held = s->ready;
    per = (held && lg_sh.rss_after >= lg_sh.rss_before)
          ? (double) (lg_sh.rss_after - lg_sh.rss_before) * 1024 / (double) held
          : 0.0;

    if (!json) {
        fprintf(f, "loomgen: %s\n", lg_conf.label);

        if (atomic_load(&lg_sh.stop)) {
            fprintf(f, "  ABORTED: interrupted or failed, the numbers are "
                    "partial\n");
        }

        fprintf(f, "  connections  %" PRIu64 "/%u held and answering pings, "
                "opened in %.2f s\n", held, lg_conf.connections, t->setup_s);
        fprintf(f, "               failures %" PRIu64 " (given up %" PRIu64
                "), disconnects %" PRIu64 "\n", s->connect_failures,
                s->failed, s->disconnects);
        fprintf(f, "  closing      %" PRIu64 " close handshakes completed, %"
                PRIu64 " connections cut at the timeout\n", s->closed,
                s->forced);

        if (lg_conf.nginx_master) {
            fprintf(f, "  nginx RSS    %" PRIu64 " kB before, %" PRIu64
                    " kB after (%d workers): %.0f bytes per connection\n",
                    lg_sh.rss_before, lg_sh.rss_after, lg_sh.workers_after,
                    per);
        }

        lg_print_codes(f, s, 0);
        return;
    }

    fprintf(f, "{\n");
    fprintf(f, "  \"workload\": \"%s\",\n", lg_conf.label);
    fprintf(f, "  \"mode\": \"connections\",\n");
    fprintf(f, "  \"threads\": %u,\n", lg_conf.threads);
    fprintf(f, "  \"requested\": %u,\n", lg_conf.connections);
    fprintf(f, "  \"held\": %" PRIu64 ",\n", held);
    fprintf(f, "  \"setup_s\": %.3f,\n", t->setup_s);
    fprintf(f, "  \"connect_failures\": %" PRIu64 ",\n", s->connect_failures);
    fprintf(f, "  \"failed_connections\": %" PRIu64 ",\n", s->failed);
    fprintf(f, "  \"disconnects\": %" PRIu64 ",\n", s->disconnects);
    lg_print_codes(f, s, 1);
    fprintf(f, "  \"nginx_workers\": %d,\n", lg_sh.workers_after);
    fprintf(f, "  \"rss_before_kb\": %" PRIu64 ",\n", lg_sh.rss_before);
    fprintf(f, "  \"rss_after_kb\": %" PRIu64 ",\n", lg_sh.rss_after);
    fprintf(f, "  \"rss_per_connection_bytes\": %.0f,\n", per);
    fprintf(f, "  \"closed_cleanly\": %" PRIu64 ",\n", s->closed);
    fprintf(f, "  \"closed_at_timeout\": %" PRIu64 ",\n", s->forced);
    fprintf(f, "  \"cpu_user_s\": %.3f,\n", t->cpu_user);
    fprintf(f, "  \"cpu_system_s\": %.3f,\n", t->cpu_sys);
    fprintf(f, "  \"aborted\": %s\n",
            atomic_load(&lg_sh.stop) ? "true" : "false");
    fprintf(f, "}\n");
}
