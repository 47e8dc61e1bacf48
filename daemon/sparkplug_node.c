/* sparkplug_node.c: the Sparkplug edge node's session (sparkplug_node.h): bdSeq kept in a file
 * and raised at every CONNECT, the NDEATH will, the subscriptions made before any birth, NBIRTH
 * and the DBIRTHs, Rebirth and DCMD from the host, and NDEATH at a clean stop. */
#include "sparkplug_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sparkplug_cmd.h"

/* ---- bdSeq: the last one used, in a file, so that a restart continues it ----------------------
 */

static int bdseq_load(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    unsigned v = 0;
    int ok = fscanf(f, "%u", &v) == 1 && v <= 255;
    fclose(f);
    if (!ok)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "sparkplug: %s does not hold a bdSeq (0..255); starting again from 0", path);
    return ok ? (int)v : -1;
}

/* Written to a temporary file, synced and renamed: a crash leaves the old or the new number. */
static void bdseq_save(const char *path, int v)
{
    if (!path)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char text[8];
    int len = snprintf(text, sizeof text, "%d\n", v);
    bool ok = fd >= 0 && write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) < 0)
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "sparkplug: cannot write the bdSeq to %s: %s; a restart may repeat a bdSeq (check "
               "the state directory's permissions and free space)",
               path, strerror(errno));
}

/* ---- the format's callbacks -------------------------------------------------------------------
 */

/* The bdSeq metric, as in the will and the NBIRTH. */
static void add_bdseq(struct spb_msg *msg, int bdseq, int64_t now)
{
    Ibspb__Metric *m = spb_msg_add(msg);
    m->name = "bdSeq";
    m->has_timestamp = true;
    m->timestamp = (uint64_t)now;
    m->has_datatype = true;
    m->datatype = SPB_INT64;
    m->value_case = IBSPB__METRIC__VALUE_LONG_VALUE;
    m->long_value = (uint64_t)bdseq;
}

/* Before each CONNECT: the next bdSeq, saved, and the NDEATH that carries it. */
static void fmt_will(void *ud, const char **topic, const void **payload, size_t *len)
{
    struct ib_spb_node *node = ud;
    node->born = false; /* a new session: births wait for the host's STATE on it */
    atomic_store(&node->host, -1);
    atomic_store(&node->host_left, false);
    node->bdseq = (node->bdseq + 1) % 256;
    bdseq_save(node->cfg->bdseq_file, node->bdseq);
    struct spb_msg msg;
    ib_buf_reset(&node->will);
    if (spb_msg_init(&msg, 1) == 0) {
        add_bdseq(&msg, node->bdseq, ib_now_ms());
        spb_msg_pack(&msg, &node->will, ib_now_ms(), -1);
        spb_msg_free(&msg);
    }
    *topic = node->t_ndeath;
    *payload = node->will.p;
    *len = node->will.len;
}

static const char *const *fmt_topics(void *ud)
{
    struct ib_spb_node *node = ud;
    return node->topics;
}

int spb_next_seq(struct ib_spb_node *node)
{
    return node->seq++; /* uint8_t: 255 wraps to 0 */
}

static Ibspb__Metric *node_metric(struct spb_msg *msg, const char *name, uint64_t alias,
                                  uint32_t dt, uint64_t v, int64_t now)
{
    Ibspb__Metric *m = spb_msg_add(msg);
    m->name = (char *)name;
    m->has_alias = alias != 0;
    m->alias = alias;
    m->has_timestamp = true;
    m->timestamp = (uint64_t)now;
    m->has_datatype = true;
    m->datatype = dt;
    m->value_case =
        dt == SPB_BOOLEAN ? IBSPB__METRIC__VALUE_BOOLEAN_VALUE : IBSPB__METRIC__VALUE_LONG_VALUE;
    if (dt == SPB_BOOLEAN)
        m->boolean_value = v != 0;
    else
        m->long_value = v;
    return m;
}

static int nbirth(struct ib_spb_node *node, struct ib_north *n)
{
    struct spb_msg msg;
    if (spb_msg_init(&msg, 5) < 0)
        return -1;
    int64_t now = ib_now_ms();
    struct ib_spb_figures f = {0};
    if (node->figures)
        node->figures(node->figures_ud, &f);
    f.uptime_s = (uint64_t)((ib_monotonic_ms() - node->start_ms) / 1000);
    add_bdseq(&msg, node->bdseq, now);
    node_metric(&msg, "Node Control/Rebirth", 0, SPB_BOOLEAN, 0, now);
    node_metric(&msg, "Gateway/Uptime s", 1, SPB_UINT64, f.uptime_s, now);
    node_metric(&msg, "Gateway/Backlog records", 2, SPB_UINT64, f.backlog, now);
    node_metric(&msg, "Gateway/Connections up", 3, SPB_UINT64, f.connections_up, now);
    node->seq = 0;
    int rc = spb_msg_pack(&msg, &node->out, now, spb_next_seq(node));
    spb_msg_free(&msg);
    if (rc < 0)
        return -1;
    node->session_ms = now;
    return ib_north_publish(n, node->t_nbirth, node->out.p, node->out.len, 0, 0);
}

/* NBIRTH, then the DBIRTH of every device whose metrics' datatypes are known; the others are
 * born right before their first DDATA (sparkplug_data.c), when their values show the types. */
int spb_births(struct ib_spb_node *node, struct ib_north *n)
{
    if (node->cfg->primary_host_id && atomic_load(&node->host) != 1) {
        if (!node->waiting_logged)
            ib_log(IB_LOG_INFO, NULL, NULL, NULL,
                   "sparkplug: waiting for the primary host %s to be online before the births",
                   node->cfg->primary_host_id);
        node->waiting_logged = true;
        return -1;
    }
    node->waiting_logged = false;
    node->born = true;
    atomic_store(&node->rebirth, false);
    node->retype = false;
    for (size_t d = 0; d < node->n_devs; d++)
        node->d[d].born = node->d[d].dead = false;
    if (nbirth(node, n) != 0)
        return -1;
    for (size_t d = 0; d < node->n_devs; d++) {
        const struct ib_spb_device_def *dev = &node->devs[d];
        bool known = true;
        for (uint32_t i = dev->first; i < dev->first + dev->n; i++)
            known &= node->m[i].datatype != 0 && !node->m[i].guessed;
        if (known && dev->n && spb_dbirth(node, n, (uint32_t)d, 0) != 0)
            return -1;
    }
    return 0;
}

static int fmt_births(void *ud, struct ib_north *n)
{
    return spb_births(ud, n);
}

/* The primary host went offline after this session's births: NDEATH, disconnect, next server. */
static bool fmt_leave(void *ud)
{
    struct ib_spb_node *node = ud;
    if (!atomic_exchange(&node->host_left, false) || !node->born)
        return false;
    node->born = false;
    return true;
}

static bool fmt_want_births(void *ud)
{
    struct ib_spb_node *node = ud;
    return atomic_load(&node->rebirth);
}

struct dcmd_ctx {
    struct ib_spb_node *node;
    uint32_t dev;
};

/* One metric of a DCMD: found by alias (or name) among the device's metrics, then written. */
static int dcmd_metric(void *ud, const struct ib_spb_cmd_metric *c)
{
    struct dcmd_ctx *x = ud;
    struct ib_spb_node *node = x->node;
    const struct ib_spb_device_def *dev = &node->devs[x->dev];
    const struct ib_spb_metric_def *def = NULL;
    for (uint32_t i = dev->first; i < dev->first + dev->n && !def; i++)
        if ((c->has_alias && c->alias == i + IB_SPB_FIRST_DEVICE_ALIAS) ||
            (!c->has_alias && c->name && strcmp(c->name, node->defs[i].name) == 0))
            def = &node->defs[i];
    int rc = -1;
    if (def && node->writer)
        rc = node->writer(node->writer_ud, dev->name, def, &c->value, c->payload_ts);
    if (rc != 0) {
        atomic_fetch_add(&node->refused, 1);
        ib_log(IB_LOG_WARNING, NULL, dev->name, def ? def->name : c->name,
               "sparkplug: DCMD write refused: %s",
               !def           ? "no such metric on this device"
               : node->writer ? "the command path refused it (see its log line)"
                              : "this build has no command path for writes");
    }
    return 0;
}

/* paho's thread: the primary host's STATE, taken when its timestamp is not older than the last
 * one taken (specification: Operational Behavior, primary host). */
static void on_state(struct ib_spb_node *node, const void *p, size_t len)
{
    bool online = false;
    int64_t ts = 0;
    if (ib_spb_state_parse(p, len, &online, &ts) < 0) {
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "sparkplug: a STATE message of %s that is not {\"online\":..,\"timestamp\":..} "
               "was ignored",
               node->cfg->primary_host_id);
        return;
    }
    if (ts < atomic_load(&node->host_ts))
        return; /* older than what was taken: a late retained message */
    atomic_store(&node->host_ts, ts);
    int was = atomic_exchange(&node->host, online ? 1 : 0);
    if (!online && was == 1)
        atomic_store(&node->host_left, true);
    ib_log(IB_LOG_INFO, NULL, NULL, NULL, "sparkplug: the primary host %s is %s",
           node->cfg->primary_host_id, online ? "online" : "offline");
}

/* paho's thread: NCMD Rebirth sets a flag for the north thread; DCMD goes to the writer. */
static bool fmt_message(void *ud, const char *topic, const void *p, size_t len)
{
    struct ib_spb_node *node = ud;
    if (node->t_state[0] && strcmp(topic, node->t_state) == 0) {
        on_state(node, p, len);
        return true;
    }
    if (strcmp(topic, node->t_ncmd) == 0) {
        if (ib_spb_cmd_is_rebirth(p, len) == 1)
            atomic_store(&node->rebirth, true);
        return true;
    }
    size_t pl = strlen(node->t_dcmd_prefix);
    if (strncmp(topic, node->t_dcmd_prefix, pl) != 0)
        return false;
    for (size_t d = 0; d < node->n_devs; d++)
        if (strcmp(topic + pl, node->devs[d].name) == 0) {
            struct dcmd_ctx x = {node, (uint32_t)d};
            if (ib_spb_cmd_decode(p, len, dcmd_metric, &x) < 0)
                ib_log(IB_LOG_WARNING, NULL, node->devs[d].name, NULL,
                       "sparkplug: a DCMD that is not a Sparkplug payload was ignored");
            return true;
        }
    return true;
}

/* A clean stop: NDEATH with this session's bdSeq (QoS 1), then the north disconnects. */
static void fmt_death(void *ud, struct ib_north *n)
{
    struct ib_spb_node *node = ud;
    ib_north_publish(n, node->t_ndeath, node->will.p, node->will.len, 1, 0);
}

/* ---- life -------------------------------------------------------------------------------------
 */

struct ib_spb_node *ib_spb_node_new(const struct ib_spb_cfg *cfg, const char *node_id,
                                    const struct ib_spb_device_def *devs, size_t n_devs,
                                    const struct ib_spb_metric_def *metrics, size_t n_metrics)
{
    struct ib_spb_node *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->m = calloc(n_metrics ? n_metrics : 1, sizeof *node->m);
    node->d = calloc(n_devs ? n_devs : 1, sizeof *node->d);
    if (!node->m || !node->d) {
        ib_spb_node_free(node);
        return NULL;
    }
    node->cfg = cfg;
    node->node_id = node_id;
    node->devs = devs;
    node->n_devs = n_devs;
    node->defs = metrics;
    node->n_defs = n_metrics;
    node->start_ms = ib_monotonic_ms();
    node->bdseq = bdseq_load(cfg->bdseq_file);
    const char *g = cfg->group_id;
    snprintf(node->t_nbirth, sizeof node->t_nbirth, "spBv1.0/%s/NBIRTH/%s", g, node_id);
    snprintf(node->t_ndeath, sizeof node->t_ndeath, "spBv1.0/%s/NDEATH/%s", g, node_id);
    snprintf(node->t_ncmd, sizeof node->t_ncmd, "spBv1.0/%s/NCMD/%s", g, node_id);
    snprintf(node->t_dcmd, sizeof node->t_dcmd, "spBv1.0/%s/DCMD/%s/+", g, node_id);
    snprintf(node->t_dcmd_prefix, sizeof node->t_dcmd_prefix, "spBv1.0/%s/DCMD/%s/", g, node_id);
    node->topics[0] = node->t_ncmd;
    node->topics[1] = node->t_dcmd;
    node->topics[2] = NULL;
    node->host = -1;
    if (cfg->primary_host_id) {
        snprintf(node->t_state, sizeof node->t_state, "spBv1.0/STATE/%s", cfg->primary_host_id);
        node->topics[2] = node->t_state;
        node->topics[3] = NULL;
    }
    node->fmt = (struct ib_north_format){
        .ud = node,
        .will = fmt_will,
        .topics = fmt_topics,
        .births = fmt_births,
        .want_births = fmt_want_births,
        .send = spb_send_record,
        .message = fmt_message,
        .death = fmt_death,
        .leave = fmt_leave,
    };
    return node;
}

void ib_spb_node_set_figures(struct ib_spb_node *node, ib_spb_figures_fn fn, void *ud)
{
    node->figures = fn;
    node->figures_ud = ud;
}

void ib_spb_node_set_layout(struct ib_spb_node *node, uint32_t layout)
{
    node->layout = layout;
}

void ib_spb_node_set_writer(struct ib_spb_node *node, ib_spb_write_fn fn, void *ud)
{
    node->writer = fn;
    node->writer_ud = ud;
}

const struct ib_north_format *ib_spb_node_format(struct ib_spb_node *node)
{
    return &node->fmt;
}

void ib_spb_node_refused(struct ib_spb_node *node)
{
    atomic_fetch_add(&node->refused, 1);
}

uint64_t ib_spb_node_refused_writes(const struct ib_spb_node *node)
{
    return atomic_load(&((struct ib_spb_node *)node)->refused);
}

unsigned ib_spb_node_bdseq(const struct ib_spb_node *node)
{
    return node->bdseq < 0 ? 0 : (unsigned)node->bdseq;
}

void ib_spb_node_free(struct ib_spb_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; node->m && i < node->n_defs; i++)
        free(node->m[i].str);
    free(node->m);
    free(node->d);
    ib_buf_free(&node->will);
    ib_buf_free(&node->out);
    ib_buf_free(&node->data);
    free(node);
}
