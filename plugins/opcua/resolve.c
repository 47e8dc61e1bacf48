/* OPC UA plugin: create()'s work: checks the connection settings the schema cannot (endpoint
 * URL, security policy and mode that go together), parses every tag's NodeId with its position in
 * the configuration on error, and allocates everything the instance needs. No I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "chunk.h"
#include "instance.h"
#include "nodeid.h"

#define RECV_BUF 65535u

/* The certificate keys come in pairs; an X.509 user identity replaces user and password. */
static int check_files(struct op_instance *in, const struct ib_connection_config *cfg)
{
    const struct op_connection_params *p = in->p;
    int bad = 0;
    if (!p->certificate != !p->private_key) {
        in->host->config_error(in->ctx, cfg->where, p->certificate ? "private_key" : "certificate",
                               "certificate and private_key go together");
        bad = 1;
    }
    if (!p->user_certificate != !p->user_private_key) {
        in->host->config_error(in->ctx, cfg->where,
                               p->user_certificate ? "user_private_key" : "user_certificate",
                               "user_certificate and user_private_key go together");
        bad = 1;
    }
    if (p->user_certificate && p->user) {
        in->host->config_error(in->ctx, cfg->where, "user_certificate",
                               "give either user (with password_file) or user_certificate, not "
                               "both: a session has one identity");
        bad = 1;
    }
    return bad;
}

static int check_connection(struct op_instance *in, const struct ib_connection_config *cfg)
{
    const struct op_connection_params *p = in->p;
    int bad = 0;
    char host[256], port[16];
    if (ua_url_split(p->endpoint, host, sizeof host, port, sizeof port) != 0) {
        in->host->config_error(in->ctx, cfg->where, "endpoint",
                               "'%s' is not an OPC UA endpoint URL: write "
                               "opc.tcp://host:port[/path]",
                               p->endpoint);
        bad = 1;
    }
    if (!p->user != !p->password_file) {
        in->host->config_error(in->ctx, cfg->where, p->user ? "password_file" : "user",
                               "user and password_file go together");
        bad = 1;
    }
    bad |= check_files(in, cfg);
    if (p->security_policy != OP_POLICY_NONE) {
        if (p->security_mode == OP_MODE_NONE) {
            in->host->config_error(in->ctx, cfg->where, "security_mode",
                                   "security_mode None goes with security_policy None only: "
                                   "choose Sign or SignAndEncrypt");
            bad = 1;
        }
    } else {
        if (p->security_mode != OP_MODE_NONE) {
            in->host->config_error(in->ctx, cfg->where, "security_mode",
                                   "security_policy None goes with security_mode None");
            bad = 1;
        }
        if (!p->allow_insecure) {
            in->host->config_error(in->ctx, cfg->where, "allow_insecure",
                                   "security_policy None sends data and commands unsigned and "
                                   "in the clear: set allow_insecure: true to accept that");
            bad = 1;
        }
    }
    return bad;
}

static int resolve_tag(struct op_instance *in, const struct ib_tag_config *tc, struct op_tag *t)
{
    const struct op_tag_params *tp = tc->params;
    char err[200];
    size_t n = strlen(tp->node);
    t->name = tc->name;
    t->writable = tc->writable;
    t->bytes = malloc(n + 1);
    if (!t->bytes)
        return IB_ERR_NOMEM;
    if (ua_nodeid_parse_uri(tp->node, &t->node, &t->nsu, t->bytes, n + 1, err, sizeof err) != 0) {
        in->host->config_error(in->ctx, tc->where, "node", "'%s': %s", tp->node, err);
        return IB_ERR_INVALID;
    }
    return IB_OK;
}

static int resolve_group(struct op_instance *in, const struct ib_group_config *gc,
                         struct op_group *g)
{
    g->name = gc->name;
    g->n_tags = gc->n_tags;
    g->interval_ms = gc->interval_ms;
    g->gp = in->host->abi_minor >= 1 ? gc->params : NULL; /* a 1.0 host has no group keys */
    if (g->gp && g->gp->mode == OP_GROUP_SUBSCRIBE) {
        g->sub = calloc(1, sizeof *g->sub);
        size_t n = gc->n_tags ? gc->n_tags : 1;
        if (!g->sub || !(g->sub->cache = calloc(n, sizeof *g->sub->cache)) ||
            !(g->sub->mark = calloc(n, sizeof *g->sub->mark)))
            return IB_ERR_NOMEM;
        g->sub->gen = 1;
        in->n_subs++;
    }
    g->tags = calloc(gc->n_tags ? gc->n_tags : 1, sizeof *g->tags);
    g->nodes = calloc(gc->n_tags ? gc->n_tags : 1, sizeof *g->nodes);
    if (!g->tags || !g->nodes)
        return IB_ERR_NOMEM;
    int rc = IB_OK;
    for (uint32_t t = 0; t < gc->n_tags; t++) {
        int r = resolve_tag(in, &gc->tags[t], &g->tags[t]);
        if (r == IB_ERR_NOMEM)
            return r;
        if (r != IB_OK)
            rc = r;
        g->nodes[t] = g->tags[t].node;
        in->has_nsu |= g->tags[t].nsu.len >= 0;
    }
    return rc;
}

static void session_config(struct op_instance *in)
{
    const struct op_connection_params *p = in->p;
    if (p->application_uri) {
        snprintf(in->application_uri, sizeof in->application_uri, "%s", p->application_uri);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(in->application_uri, sizeof in->application_uri, "urn:%s:ironbridge", host);
    }
    _Static_assert((int)OP_POLICY_AES256_SHA256_RSAPSS == (int)UA_POLICY_AES256_SHA256_RSAPSS,
                   "enum op_policy has ua_policy's values");
    in->scfg = (struct ua_session_config){
        .url = p->endpoint,
        .application_uri = in->application_uri,
        .application_name = "ironbridge",
        .session_name = "ironbridge",
        .timeout_ms = (double)p->session_timeout_ms,
        .policy = p->security_policy, /* enum op_policy has ua_policy's values */
        .mode = p->security_mode + 1, /* enum op_mode is ua_mode - 1 */
        .user = p->user,
        .token_sec = &in->sec,
    };
    in->sec.policy = p->security_policy;
    in->sec.mode = p->security_mode + 1;
    const char *state = getenv("STATE_DIRECTORY");
    if (p->pki_dir)
        snprintf(in->pki_dir, sizeof in->pki_dir, "%s", p->pki_dir);
    else if (state && *state) /* systemd may list several, separated by ':' */
        snprintf(in->pki_dir, sizeof in->pki_dir, "%.*s/opcua-pki", (int)strcspn(state, ":"),
                 state);
    else
        snprintf(in->pki_dir, sizeof in->pki_dir, "/var/lib/ironbridge/opcua-pki");
}

int op_resolve(struct op_instance *in, const struct ib_connection_config *cfg)
{
    int bad = check_connection(in, cfg);
    in->n_devices = cfg->n_devices;
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *in->devices);
    if (!in->devices)
        return IB_ERR_NOMEM;
    for (uint32_t d = 0; d < cfg->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        struct op_device *dev = &in->devices[d];
        dev->name = dc->name;
        dev->n_groups = dc->n_groups;
        dev->groups = calloc(dc->n_groups ? dc->n_groups : 1, sizeof *dev->groups);
        if (!dev->groups)
            return IB_ERR_NOMEM;
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            int r = resolve_group(in, &dc->groups[g], &dev->groups[g]);
            if (r == IB_ERR_NOMEM)
                return r;
            bad |= r != IB_OK;
        }
    }
    if (bad)
        return IB_ERR_INVALID;
    session_config(in);
    in->max_per_read = (uint32_t)in->p->max_nodes_per_read;
    int rc = ua_channel_init(&in->ch, RECV_BUF, (uint32_t)in->p->max_message_size,
                             (uint32_t)in->p->timeout_ms, (uint32_t)in->p->token_lifetime_ms);
    op_sub_init(in); /* after the channel's init: it sets the channel's stray handler */
    return rc;
}

void op_instance_free(struct op_instance *in)
{
    if (!in)
        return;
    if (in->ch.chunk) /* initialized */
        ua_channel_free(&in->ch);
    ua_session_free(&in->session);
    ua_sec_clear(&in->sec);
    EVP_PKEY_free(in->sec.own_key);
    OPENSSL_free(in->sec.own_cert);
    for (uint32_t d = 0; in->devices && d < in->n_devices; d++) {
        struct op_device *dev = &in->devices[d];
        for (uint32_t g = 0; dev->groups && g < dev->n_groups; g++) {
            struct op_group *grp = &dev->groups[g];
            for (uint32_t t = 0; grp->tags && t < grp->n_tags; t++) {
                free(grp->tags[t].bytes);
                ua_text_free(&grp->tags[t].text);
            }
            free(grp->tags);
            free(grp->nodes);
            if (grp->sub) {
                free(grp->sub->cache);
                free(grp->sub->mark);
            }
            free(grp->sub);
        }
        free(dev->groups);
    }
    free(in->devices);
    free(in);
}
