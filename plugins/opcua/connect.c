/* OPC UA plugin: open() and close(): the secure channel, GetEndpoints, the session, and the
 * server's MaxNodesPerRead; with a security policy, our certificate (made at first use), the
 * endpoint's certificate checked against trusted/ (refused ones copied to rejected/), and a
 * signed and encrypted channel. A failure is logged once per episode with the server's
 * StatusCode name; a connect with security None is warned every time. */
#include <inttypes.h>

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <string.h>

#include "ids.h"
#include "pki.h"
#include "instance.h"
#include "open_secured.h"
#include "services.h"
#include "status.h"

static void on_limit(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct op_instance *in = arg;
    (void)i;
    if ((dv->mask & UA_DV_VALUE) && !dv->value.is_array && !ua_status_is_bad(dv->status) &&
        (dv->value.type == UA_UINT32 || dv->value.type == UA_UINT16) && dv->value.v.u > 0 &&
        dv->value.v.u < in->max_per_read)
        in->max_per_read = (uint32_t)dv->value.v.u;
}

static void log_failure(struct op_instance *in, int rc)
{
    int64_t now = in->host->monotonic_ms();
    switch (ib_episode_fail(&in->open_ep, op_cause(in, rc), now)) {
    case IB_EPISODE_STARTED:
        IB_WARN(in->host, in->ctx, "cannot connect to %s: %s", in->p->endpoint, in->ch.error);
        break;
    case IB_EPISODE_CHANGED:
        IB_WARN(in->host, in->ctx, "still cannot connect to %s, now: %s", in->p->endpoint,
                in->ch.error);
        break;
    case IB_EPISODE_REMIND:
        IB_WARN(in->host, in->ctx,
                "still cannot connect to %s (%" PRIu64 " attempts in %" PRId64 " s): %s",
                in->p->endpoint, in->open_ep.count, ib_episode_age_s(&in->open_ep, now),
                in->ch.error);
        break;
    default:
        break;
    }
}

/* Our certificate, the endpoint's certificate verified against the PKI directory, then the
 * secured channel (open_secured.c, shared with the browse tool). */
static int open_secured(struct op_instance *in)
{
    struct ua_own_files own = {.pki_dir = in->pki_dir,
                               .app_uri = in->application_uri,
                               .cert = in->p->certificate,
                               .key = in->p->private_key};
    return ua_open_secured(&in->ch, &in->session, &in->scfg, &in->sec, &own);
}

/* The first line of password_file into in->password; refused when group/other-readable. */
static int read_password(struct op_instance *in)
{
    const char *path = in->p->password_file;
    struct stat st;
    FILE *f = NULL;
    if (stat(path, &st) != 0 || !(f = fopen(path, "r"))) {
        snprintf(in->ch.error, sizeof in->ch.error, "cannot read password_file %s: %s", path,
                 strerror(errno));
        return IB_ERR_INVALID;
    }
    if (st.st_mode & 077) {
        fclose(f);
        snprintf(in->ch.error, sizeof in->ch.error,
                 "password_file %s is readable by group or others: chmod 600 it", path);
        return IB_ERR_INVALID;
    }
    if (!fgets(in->password, sizeof in->password, f))
        in->password[0] = '\0';
    fclose(f);
    in->password[strcspn(in->password, "\r\n")] = '\0';
    in->scfg.password = in->password;
    return IB_OK;
}

/* The X.509 user identity's certificate and key into scfg, loaded at each connect (a renewed
 * certificate is taken without a restart); freed by drop_user_cert. */
static int load_user_cert(struct op_instance *in)
{
    uint8_t *der = NULL;
    size_t len = 0;
    char err[1024];
    if (ua_pki_load(in->p->user_certificate, in->p->user_private_key, &in->scfg.user_key, &der,
                    &len, err, sizeof err) != 0) {
        snprintf(in->ch.error, sizeof in->ch.error, "user_certificate: %s", err);
        return IB_ERR_INVALID;
    }
    in->scfg.user_cert = der;
    in->scfg.user_cert_len = len;
    return IB_OK;
}

static void drop_user_cert(struct op_instance *in)
{
    EVP_PKEY_free(in->scfg.user_key);
    OPENSSL_free((void *)in->scfg.user_cert);
    in->scfg.user_key = NULL;
    in->scfg.user_cert = NULL;
    in->scfg.user_cert_len = 0;
}

static void explain_identity(struct op_instance *in)
{
    uint32_t sc = in->ch.last_status & 0xffff0000u;
    if (in->p->user_certificate && (sc == 0x80200000u || sc == 0x801F0000u || sc == 0x80570000u)) {
        size_t n = strlen(in->ch.error);
        snprintf(in->ch.error + n, sizeof in->ch.error - n,
                 " (user_certificate %s: the server does not accept it: add it to the server's "
                 "trusted user certificates and map it to a user)",
                 in->p->user_certificate);
    } else if (in->p->user && (sc == 0x801F0000u || sc == 0x80210000u || sc == 0x80200000u)) {
        size_t n = strlen(in->ch.error);
        snprintf(in->ch.error + n, sizeof in->ch.error - n,
                 " (user '%s': wrong user name or password, or the user may not log in)",
                 in->p->user);
    }
}

struct ns_map {
    struct op_instance *in;
    int found; /* the NamespaceArray was read */
};

/* Sets the namespace index of every nsu= tag from the server's NamespaceArray (a String
 * array); a URI the server does not have gets index 65535 (read as BadNodeIdUnknown) and a
 * warning. */
static void on_namespaces(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct ns_map *m = arg;
    struct op_instance *in = m->in;
    (void)i;
    const struct ua_variant *v = &dv->value;
    if (!(dv->mask & UA_DV_VALUE) || !v->is_array || v->type != UA_STRING)
        return;
    m->found = 1;
    for (uint32_t d = 0; d < in->n_devices; d++)
        for (uint32_t g = 0; g < in->devices[d].n_groups; g++) {
            struct op_group *grp = &in->devices[d].groups[g];
            for (uint32_t t = 0; t < grp->n_tags; t++) {
                struct op_tag *tag = &grp->tags[t];
                if (tag->nsu.len < 0)
                    continue;
                uint32_t index = 65535;
                struct ua_variant e;
                for (int32_t k = 0; k < v->n && k < 65535; k++)
                    if (ua_variant_elem(v, k, &e) == UA_OK && e.v.s.len == tag->nsu.len &&
                        memcmp(e.v.s.ptr, tag->nsu.ptr, (size_t)tag->nsu.len) == 0) {
                        index = (uint32_t)k;
                        break;
                    }
                if (index == 65535)
                    IB_LOG(in->host, in->ctx, IB_LOG_WARNING, in->devices[d].name, tag->name,
                           "the server has no namespace '%.*s' (its NamespaceArray, node "
                           "i=2255, lists the URIs it has)",
                           (int)tag->nsu.len, tag->nsu.ptr);
                tag->node.ns = (uint16_t)index;
                grp->nodes[t].ns = (uint16_t)index;
            }
        }
}

static int resolve_namespaces(struct op_instance *in)
{
    struct ns_map m = {in, 0};
    struct ua_nodeid node = ua_nid_num(0, UA_NODE_SERVER_NAMESPACE_ARRAY);
    int rc = ua_read(&in->ch, &in->session, &node, 1, UA_ATTR_VALUE, on_namespaces, &m);
    if (rc == IB_OK && !m.found) {
        snprintf(in->ch.error, sizeof in->ch.error,
                 "the server's NamespaceArray (i=2255) is not an array of strings");
        rc = IB_ERR_PROTOCOL;
    }
    return rc;
}

int op_connect(struct op_instance *in)
{
    op_disconnect(in);
    int rc = in->p->user ? read_password(in) : IB_OK;
    if (rc == IB_OK && in->p->user_certificate)
        rc = load_user_cert(in);
    if (rc != IB_OK) {
        log_failure(in, rc);
        return IB_ERR_INVALID;
    }
    if (in->p->security_policy == OP_POLICY_NONE) {
        IB_WARN(in->host, in->ctx,
                "connecting to %s with security policy None (allow_insecure: true): values and "
                "commands travel unsigned and unencrypted",
                in->p->endpoint);
        in->ch.sec = NULL;
        rc = ua_channel_open(&in->ch, in->p->endpoint);
        if (rc == IB_OK)
            rc = ua_session_endpoints(&in->ch, &in->session, &in->scfg);
        if (rc == IB_OK && (in->p->user || in->p->user_certificate) &&
            in->session.endpoint_cert) /* to encrypt the password, to sign the X.509 token */
            ua_sec_set_peer(&in->sec, in->session.endpoint_cert, in->session.endpoint_cert_len);
    } else {
        rc = open_secured(in);
    }
    if (rc == IB_OK)
        rc = ua_session_open(&in->ch, &in->session, &in->scfg);
    OPENSSL_cleanse(in->password, sizeof in->password);
    drop_user_cert(in);
    if (rc == IB_OK && in->has_nsu) /* indexes can change when the server restarts */
        rc = resolve_namespaces(in);
    if (rc != IB_OK) {
        explain_identity(in);
        log_failure(in, rc);
        ua_channel_close(&in->ch);
        return rc == IB_ERR_INVALID ? rc : IB_ERR_CONNECTION;
    }
    in->max_per_read = (uint32_t)in->p->max_nodes_per_read;
    struct ua_nodeid limit = ua_nid_num(0, UA_NODE_MAX_NODES_PER_READ);
    ua_read(&in->ch, &in->session, &limit, 1, UA_ATTR_VALUE, on_limit, in);
    in->connected = true;
    in->renewals_logged = 0;
    int64_t now = in->host->monotonic_ms();
    if (ib_episode_ok(&in->open_ep, now) == IB_EPISODE_ENDED)
        IB_NOTICE(in->host, in->ctx, "connected to %s after %" PRIu64 " failed attempt(s)",
                  in->p->endpoint, in->open_ep.count);
    else
        IB_INFO(in->host, in->ctx,
                "connected to %s with security policy %s, mode %s (at most %u nodes per Read)",
                in->p->endpoint, strchr(ua_policy_uri(in->sec.policy), '#') + 1,
                in->sec.mode == UA_MODE_NONE   ? "None"
                : in->sec.mode == UA_MODE_SIGN ? "Sign"
                                               : "SignAndEncrypt",
                in->max_per_read);
    return IB_OK;
}

void op_disconnect(struct op_instance *in)
{
    if (in->ch.fd >= 0)
        ua_session_close(&in->ch, &in->session);
    ua_channel_close(&in->ch);
    in->session.active = false;
    in->connected = false;
}
