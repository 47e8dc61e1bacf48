/* The north's connecting: a fresh paho client per attempt with its options (TLS, credentials,
 * last will), the password file, and the failure episode of the broker connection (its clear
 * cause, the back-off, its end once a connection delivers). */
#include "north_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "tlscheck.h"
#include "util.h"

static void on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    struct ib_north *n = ctx;
    pthread_mutex_lock(&n->mu);
    if (n->state == N_CONNECTING)
        n->state = N_CONNECTED;
    const char *uri = r && r->alt.connect.serverURI ? r->alt.connect.serverURI : NULL;
    snprintf(n->server, sizeof n->server, "%s", uri ? uri : n->cfg->server_uri);
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
}

/* Record a failure for the north thread to act on (any thread). */
void north_set_failure(struct ib_north *n, bool lost, const char *why)
{
    pthread_mutex_lock(&n->mu);
    if (lost)
        n->conn_lost = true;
    else
        n->conn_failed = true;
    snprintf(n->fail_msg, sizeof n->fail_msg, "%s", why);
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
    char why[256];
    const char *refused = r ? ib_north_connack_text(r->code) : NULL;
    if (refused)
        snprintf(why, sizeof why, "the broker refused the connection: CONNACK return code %d (%s)",
                 r->code, refused);
    else if (r && r->message)
        snprintf(why, sizeof why, "%s", r->message);
    else if (r)
        snprintf(why, sizeof why, "%s (code %d)", MQTTAsync_strerror(r->code), r->code);
    else
        snprintf(why, sizeof why, "connect failed");
    north_set_failure(ctx, false, why);
}

/* MQTT 5: the same through the *5 callbacks that its connect takes. */
static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *r)
{
    MQTTAsync_successData d; /* only the server connected to is read */
    memset(&d, 0, sizeof d);
    d.alt.connect.serverURI = r ? r->alt.connect.serverURI : NULL;
    on_connect_ok(ctx, &d);
}

static void on_connect_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    char why[256];
    if (r && r->reasonCode)
        snprintf(why, sizeof why, "the broker refused the connection: reason code %d (%s)",
                 (int)r->reasonCode, MQTTReasonCode_toString(r->reasonCode));
    else if (r && r->message)
        snprintf(why, sizeof why, "%s", r->message);
    else if (r)
        snprintf(why, sizeof why, "%s (code %d)", MQTTAsync_strerror(r->code), r->code);
    else
        snprintf(why, sizeof why, "connect failed");
    north_set_failure(ctx, false, why);
}

static void on_conn_lost(void *ctx, char *cause)
{
    north_set_failure(ctx, true, cause ? cause : "connection lost");
}

/* OpenSSL's own line for a failed handshake, on paho's thread. It comes before the clear cause
 * (the diagnostic handshake, schedule_retry) and at every retry: kept for debug only. */
static int on_tls_error(const char *str, size_t len, void *u)
{
    struct ib_north *n = u;
    int l = (int)(len > 0 && str[len - 1] == '\n' ? len - 1 : len);
    pthread_mutex_lock(&n->mu);
    snprintf(n->tls_raw, sizeof n->tls_raw, "%.*s", l, str);
    pthread_mutex_unlock(&n->mu);
    ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: TLS with %s: %.*s", n->cfg->url, l, str);
    return 0;
}

int ib_north_read_password(const char *path, char *out, size_t len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot read password_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, len, f);
    fclose(f);
    size_t line = 0;
    while (line < n && out[line] != '\n' && out[line] != '\0')
        line++;
    bool ended = line < n || n < len; /* a newline (or NUL) or the end of the file came */
    if (line && out[line - 1] == '\r')
        line--;
    if (!ended || line >= len) {
        explicit_bzero(out, len);
        snprintf(err, err_len,
                 "password_file %s: its first line is longer than %zu bytes, the longest "
                 "password ironbridge sends; not connecting: put the password alone on the "
                 "first line",
                 path, len - 1);
        return -1;
    }
    out[line] = '\0';
    explicit_bzero(out + line, len - line);
    if (!line) {
        snprintf(err, err_len,
                 "password_file %s: its first line is empty; not connecting: put the password "
                 "on the first line",
                 path);
        return -1;
    }
    return 0;
}

const char *ib_north_connack_text(int code)
{
    static const char *const text[] = {
        [1] = "unacceptable protocol version",
        [2] = "client identifier rejected",
        [3] = "server unavailable",
        [4] = "bad user name or password",
        [5] = "not authorized",
    };
    return code >= 1 && code <= 5 ? text[code] : NULL;
}

void north_start_connect(struct ib_north *n)
{
    const struct ib_mqtt_cfg *cfg = n->cfg;
    char err[512];
    if (cfg->password_file && ib_north_read_password(cfg->password_file, n->password,
                                                     sizeof n->password, err, sizeof err) < 0) {
        north_set_failure(n, false, err); /* the file may be fixed: tried again with back-off */
        return;
    }
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.sendWhileDisconnected = 0; /* our queue holds data while offline, not paho's buffer */
    /* paho counts messages not yet written against maxBufferedMessages even while connected
     * (default 100): below the in-flight window it refuses sends during a fast replay. */
    co.maxBufferedMessages = (int)cfg->max_inflight + 16;
    bool v5 = cfg->version == IB_MQTT_V5;
    co.MQTTVersion = v5 ? MQTTVERSION_5 : MQTTVERSION_DEFAULT;
    int rc = MQTTAsync_createWithOptions(&n->client, cfg->server_uri, cfg->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "north: cannot create an MQTT client for %s: %s",
               cfg->url, MQTTAsync_strerror(rc));
        n->client = NULL;
        n->next_attempt_ms = ib_monotonic_ms() + cfg->reconnect_max_ms;
        return;
    }
    MQTTAsync_setCallbacks(n->client, n, on_conn_lost, north_on_message, NULL);

    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    if (v5) {
        MQTTAsync_connectOptions o5 = MQTTAsync_connectOptions_initializer5;
        o = o5;
        o.cleanstart = 1; /* MQTT 5 has clean start instead of clean session */
    } else {
        o.cleansession = 1;
    }
    o.keepAliveInterval = (int)cfg->keepalive_s;
    o.connectTimeout = (int)((cfg->connect_timeout_ms + 999) / 1000);
    o.automaticReconnect = 0; /* we reconnect ourselves, with jitter and a fresh client */
    o.maxInflight = (int)cfg->max_inflight + 4;
    char *uris[16];
    if (cfg->n_server_uris) { /* paho tries them in order (north.mqtt.servers), from the one a
                               * format's leave moved to */
        int count = cfg->n_server_uris < 16 ? cfg->n_server_uris : 16;
        for (int i = 0; i < count; i++)
            uris[i] = (char *)cfg->server_uris[(i + n->server_skip) % (unsigned)count];
        o.serverURIs = uris;
        o.serverURIcount = count;
    }
    if (v5) {
        o.onSuccess5 = on_connect_ok5;
        o.onFailure5 = on_connect_fail5;
    } else {
        o.onSuccess = on_connect_ok;
        o.onFailure = on_connect_fail;
    }
    o.context = n;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    will.topicName = n->status_topic;
    will.message = "offline";
    will.retained = 1;
    will.qos = 1;
    if (n->fmt) { /* the format's will (Sparkplug: NDEATH with the new bdSeq) */
        const void *wp;
        size_t wl;
        n->fmt->will(n->fmt->ud, &will.topicName, &wp, &wl);
        will.message = NULL;
        will.payload.data = wp;
        will.payload.len = (int)wl;
        will.retained = 0;
    }
    o.will = &will;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (cfg->tls) {
        ssl.trustStore = cfg->ca;
        ssl.CApath = cfg->ca_path;
        ssl.keyStore = cfg->cert;
        ssl.privateKey = cfg->key;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;                            /* paho's default 0 skips the host name check */
        ssl.disableDefaultTrustStore = 1;          /* trust only the configured CA */
        ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT; /* OpenSSL 3 refuses below TLS 1.2 */
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = n;
        o.ssl = &ssl;
    } else if (!n->plain_warned) {
        n->plain_warned = true;
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "north: connecting to %s in PLAINTEXT (allow_insecure: true): data and "
               "credentials travel unencrypted",
               cfg->url);
    }
    if (cfg->username)
        o.username = cfg->username;
    if (cfg->password_file)
        o.password = n->password;
    pthread_mutex_lock(&n->mu);
    n->state = N_CONNECTING;
    n->conn_failed = n->conn_lost = false;
    n->tls_raw[0] = '\0';
    pthread_mutex_unlock(&n->mu);
    ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: connecting to %s", cfg->url);
    rc = MQTTAsync_connect(n->client, &o);
    if (rc != MQTTASYNC_SUCCESS)
        north_set_failure(n, false, MQTTAsync_strerror(rc));
}

/* A code for a failure's kind (ib_episode): the text up to its first ": ", so that details that
 * vary from one attempt to the next ("the TLS handshake with h:p failed: unexpected eof" or
 * "...: the broker closed the connection", a CONNACK code) are one cause. */
static long cause_code(bool lost, const char *why)
{
    uint32_t h = lost ? 2166136261u : 2166136262u;
    for (const unsigned char *p = (const unsigned char *)why; *p && !(p[0] == ':' && p[1] == ' ');
         p++)
        h = (h ^ *p) * 16777619u;
    return (long)h;
}

/* A change of cause is logged at most this often; in between it is counted (a broker that
 * alternates between two failures would otherwise log every attempt). */
#define CHANGE_LOG_MS 60000

/* paho says only "TCP/TLS connect failure" for a refused certificate: find out why with a
 * handshake of our own, so that the log tells a person what to fix. */
static const char *clear_cause(struct ib_north *n, bool lost, const char *why, char *buf,
                               size_t len)
{
    if (lost || !n->cfg->tls || strstr(why, "CONNACK") || strstr(why, "password_file"))
        return why;
    if (ib_tlscheck_diagnose(n->cfg, 3000, buf, len) < 0)
        return buf;
    pthread_mutex_lock(&n->mu); /* our handshake passed, paho's did not: OpenSSL's line helps */
    bool raw = n->tls_raw[0];
    if (raw)
        snprintf(buf, len, "%s (OpenSSL: %s)", why, n->tls_raw);
    pthread_mutex_unlock(&n->mu);
    return raw ? buf : why;
}

/* A connection attempt failed or a connection was lost: log it as one episode (its start, a
 * change of cause, a reminder every 10 min; repeats are counted) and schedule the next try with
 * capped, jittered back-off. */
void north_schedule_retry(struct ib_north *n, bool lost, const char *why_in)
{
    int64_t delay =
        ib_backoff_ms(n->cfg->reconnect_min_ms, n->cfg->reconnect_max_ms, n->attempt, &n->rng);
    n->attempt++;
    char buf[512];
    const char *why = clear_cause(n, lost, why_in, buf, sizeof buf);
    int64_t now = ib_monotonic_ms();
    const char *url = n->cfg->url;
    int64_t last_line = n->ep.logged_ms;
    enum ib_episode_event ev = ib_episode_fail(&n->ep, cause_code(lost, why), now);
    if (ev == IB_EPISODE_CHANGED && now - last_line < CHANGE_LOG_MS) {
        n->ep.logged_ms = last_line; /* not logged: the next change or reminder comes on time */
        ev = IB_EPISODE_QUIET;
    }
    switch (ev) {
    case IB_EPISODE_STARTED:
        if (lost)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "north: connection to %s lost: %s; unacknowledged messages will be sent "
                   "again; reconnecting (repeats are counted, not logged, until a connection "
                   "delivers again)",
                   url, why);
        else
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "north: cannot connect to the broker %s: %s; retrying in %.1f s (repeats "
                   "are counted, not logged, until a connection delivers again)",
                   url, why, (double)delay / 1000.0);
        break;
    case IB_EPISODE_CHANGED:
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "north: still no working connection to %s, now: %s%s (%" PRIu64
               " failures in %" PRId64 " s)",
               url, lost ? "connection lost: " : "", why, n->ep.count,
               ib_episode_age_s(&n->ep, now));
        break;
    case IB_EPISODE_REMIND:
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "north: still no working connection to %s: %s%s (%" PRIu64 " failures in %" PRId64
               " s); retrying",
               url, lost ? "connection lost: " : "", why, n->ep.count,
               ib_episode_age_s(&n->ep, now));
        break;
    default:
        ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: %s %s: %s; retrying in %.1f s",
               lost ? "lost" : "cannot connect to", url, why, (double)delay / 1000.0);
        break;
    }
    n->next_attempt_ms = now + delay;
}

/* The failure episode ends when a connection delivers a record, or holds NORTH_STABLE_MS with
 * nothing to deliver: a broker that takes the connection and drops it at each PUBLISH is
 * still failing. */
void north_check_stable(struct ib_north *n, int64_t now)
{
    if (!n->ep.active)
        return;
    pthread_mutex_lock(&n->mu);
    bool delivered = n->delivered;
    pthread_mutex_unlock(&n->mu);
    if (!delivered && now - n->up_since_ms < NORTH_STABLE_MS)
        return;
    if (ib_episode_ok(&n->ep, now) == IB_EPISODE_ENDED)
        ib_log(IB_LOG_NOTICE, NULL, NULL, NULL,
               "north: connected to %s and delivering again, after %" PRIu64
               " failed attempts or dropped connections in %" PRId64 " s",
               n->cfg->url, n->ep.count, ib_episode_age_s(&n->ep, now));
    n->attempt = 0;
}
