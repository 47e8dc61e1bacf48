/* OPC UA client library: the secured open shared by the plugin (connect.c) and the browse tool:
 * load our certificate, GetEndpoints over a None channel, verify the endpoint's certificate
 * against the PKI directory, open the channel with the policy. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include <ironbridge/error.h>

#include "open_secured.h"
#include "pki.h"

int ua_open_secured(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg, struct ua_sec *sec,
                    const struct ua_own_files *own)
{
    char err[2048], host[256], port[16];
    int rc;
    if (!sec->own_key) {
        rc = own->cert ? ua_pki_load(own->cert, own->key, &sec->own_key, &sec->own_cert,
                                     &sec->own_cert_len, err, sizeof err)
                       : ua_pki_own(own->pki_dir, own->app_uri, &sec->own_key, &sec->own_cert,
                                    &sec->own_cert_len, err, sizeof err);
        if (rc != 0) {
            snprintf(ch->error, sizeof ch->error, "%s", err);
            return IB_ERR_INVALID;
        }
        char uri[512];
        if (own->cert && (ua_pki_cert_uri(sec->own_cert, sec->own_cert_len, uri, sizeof uri) != 0 ||
                          strcmp(uri, cfg->application_uri) != 0)) {
            snprintf(ch->error, sizeof ch->error,
                     "the certificate %s names the ApplicationUri '%s' in its subjectAltName, "
                     "not '%s': set application_uri: %s (servers refuse a mismatch)",
                     own->cert, uri, cfg->application_uri, uri[0] ? uri : "<its URI>");
            EVP_PKEY_free(sec->own_key);
            OPENSSL_free(sec->own_cert);
            sec->own_key = NULL;
            sec->own_cert = NULL;
            return IB_ERR_INVALID;
        }
    }
    ch->sec = NULL;
    rc = ua_channel_open(ch, cfg->url);
    if (rc == IB_OK)
        rc = ua_session_endpoints(ch, s, cfg);
    ua_channel_close(ch);
    if (rc != IB_OK)
        return rc;
    if (!s->endpoint_cert || ua_sec_set_peer(sec, s->endpoint_cert, s->endpoint_cert_len) != 0) {
        snprintf(ch->error, sizeof ch->error,
                 "the endpoint has no usable RSA certificate (2048 to 4096 bits)");
        return IB_ERR_PROTOCOL;
    }
    struct ua_pki_expect e = {.app_uri = s->server_uri};
    if (ua_url_split(cfg->url, host, sizeof host, port, sizeof port) == 0)
        e.host = host;
    uint32_t sc =
        ua_pki_verify(own->pki_dir, s->endpoint_cert, s->endpoint_cert_len, &e, err, sizeof err);
    if (sc) {
        ch->last_status = sc;
        snprintf(ch->error, sizeof ch->error, "%s", err);
        return IB_ERR_DENIED;
    }
    ch->sec = sec;
    return ua_channel_open(ch, cfg->url);
}
