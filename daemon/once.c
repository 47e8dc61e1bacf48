/* The printers of `ironbridge --once` and `ironbridge-plugin-test`: poll every group in order
 * from the calling thread (no poller runs) and print each sample as a table row or a JSON line. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway_priv.h"
#include "json.h"

static void value_text(const struct ib_sample *s, char *buf, size_t len)
{
    if (s->quality != IB_Q_GOOD) {
        snprintf(buf, len, "-");
        return;
    }
    const struct ib_value *v = &s->value;
    switch (v->type) {
    case IB_V_BOOL:
        snprintf(buf, len, "%s", v->v.b ? "true" : "false");
        break;
    case IB_V_INT:
        snprintf(buf, len, "%" PRId64, v->v.i);
        break;
    case IB_V_UINT:
        snprintf(buf, len, "%" PRIu64, v->v.u);
        break;
    case IB_V_DOUBLE: {
        char d[32];
        if (ib_fmt_scalar(d, v) < 0)
            snprintf(d, sizeof d, "-");
        snprintf(buf, len, "%s", d);
        break;
    }
    case IB_V_STRING:
        snprintf(buf, len, "\"%.*s\"", (int)(v->v.s.len > 60 ? 60 : v->v.s.len), v->v.s.ptr);
        break;
    case IB_V_JSON:
        snprintf(buf, len, "%.*s", (int)(v->v.s.len > 60 ? 60 : v->v.s.len), v->v.s.ptr);
        break;
    default:
        snprintf(buf, len, "-");
    }
}

static void quality_text(const struct ib_sample *s, char *buf, size_t len)
{
    if (s->quality == IB_Q_GOOD)
        snprintf(buf, len, "good");
    else if (s->quality == IB_Q_BAD && s->reason == IB_R_EXCEPTION)
        snprintf(buf, len, "bad (exception %u)", s->code);
    else if (s->quality == IB_Q_BAD)
        snprintf(buf, len, "bad (%s)", ib_record_reason_name(s->reason));
    else
        snprintf(buf, len, "%s", ib_record_quality_name(s->quality));
}

/* One sample as a JSON line: where it comes from, the raw value, then the sample's fields
 * exactly as in payloads (the record encoder writes them). */
static void print_json_sample(FILE *out, unsigned poll, const struct poller *p,
                              const struct group_rt *g, uint32_t t)
{
    struct ib_buf b = {0};
    int rc = ib_buf_puts(&b, "{\"poll\":");
    rc |= ib_json_uint(&b, poll);
    rc |= ib_buf_puts(&b, ",\"connection\":");
    rc |= ib_json_cstr(&b, p->cc->pub.name);
    rc |= ib_buf_puts(&b, ",\"device\":");
    rc |= ib_json_cstr(&b, g->dev_name);
    rc |= ib_buf_puts(&b, ",\"group\":");
    rc |= ib_json_cstr(&b, g->g->name);
    rc |= ib_buf_puts(&b, ",\"tag\":");
    rc |= ib_json_cstr(&b, g->g->tags[t].name);
    rc |= ib_buf_puts(&b, ",\"raw\":");
    if (g->raw[t].quality == IB_Q_GOOD)
        rc |= ib_json_value(&b, &g->raw[t].value);
    else
        rc |= ib_buf_puts(&b, "null");
    if (g->norm[t].quality != IB_Q_GOOD)
        rc |= ib_buf_puts(&b, ",\"v\":null");
    rc |= ib_buf_puts(&b, ",");
    rc |= ib_record_encode_sample(&b, &g->norm[t]);
    rc |= ib_buf_puts(&b, "}");
    if (!rc)
        fprintf(out, "%s\n", b.p);
    ib_buf_free(&b);
}

void ib_gateway_poll_print(struct ib_gateway *gw, const struct ib_poll_opts *o, FILE *out,
                           struct ib_poll_counts *counts)
{
    memset(counts, 0, sizeof *counts);
    if (!o->json)
        fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", "CONNECTION", "DEVICE", "TAG",
                "RAW", "VALUE", "UNIT", "QUALITY");
    for (unsigned poll = 1; poll <= o->polls; poll++) {
        if (poll > 1 && o->interval_ms > 0) {
            struct timespec ts = {o->interval_ms / 1000, (o->interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        for (size_t i = 0; i < gw->n_pollers; i++) {
            struct poller *p = gw->pollers[i];
            p->next_open_ms = 0;
            for (size_t k = 0; k < p->n_groups; k++) {
                struct group_rt *g = &p->groups[k];
                /* One attempt to open per connection and poll: a dead one must not cost a
                 * timeout per group. */
                if (!p->open && p->open_failing.active)
                    p->next_open_ms = INT64_MAX;
                ib_poller_poll_group(p, g);
                for (uint32_t t = 0; t < g->g->n_tags; t++) {
                    counts->samples++;
                    counts->good += g->norm[t].quality == IB_Q_GOOD;
                    if (o->json) {
                        print_json_sample(out, poll, p, g, t);
                        continue;
                    }
                    char raw[64], val[64], q[48];
                    value_text(&g->raw[t], raw, sizeof raw);
                    value_text(&g->norm[t], val, sizeof val);
                    quality_text(&g->norm[t], q, sizeof q);
                    const char *unit = g->cg->tags[t].unit;
                    fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", p->cc->pub.name,
                            g->dev_name, g->g->tags[t].name, raw, val, unit ? unit : "", q);
                }
            }
            /* --once closes after its one poll; repeated polls keep the connection, as the
             * daemon does. */
            if (poll == o->polls)
                ib_poller_close(p);
        }
    }
    fflush(out);
}

bool ib_gateway_once(struct ib_gateway *gw, FILE *out)
{
    struct ib_poll_opts o = {.polls = 1};
    struct ib_poll_counts c;
    ib_gateway_poll_print(gw, &o, out, &c);
    return c.good == c.samples;
}
