/* ironbridge-opcua-browse: connects to an OPC UA server with the plugin's channel, session and
 * PKI code (secure by default: Basic256Sha256 SignAndEncrypt; None only with
 * --allow-insecure), walks its address space and prints the Variables as a tag list CSV that a
 * group's `tags_csv:` reads as it is. The command line and the connect sequence. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <ironbridge/error.h>

#include "browse.h"
#include "open_secured.h"
#include "pki.h"

#ifndef OP_PLUGIN_VERSION
#define OP_PLUGIN_VERSION "unknown"
#endif

struct opts {
    const char *url, *policy, *mode, *pki_dir, *app_uri, *user, *password_file, *out;
    const char *cert, *key, *user_cert, *user_key;
    bool allow_insecure;
    long timeout_ms;
    struct ua_walk_opts walk;
};

static const char usage[] =
    "Usage: ironbridge-opcua-browse [OPTION]... opc.tcp://HOST:PORT[/PATH]\n"
    "Walk an OPC UA server's address space and print its variables as a tag list CSV\n"
    "(columns name,node,writable,description) that a group's tags_csv: reads as it is.\n"
    "\n"
    "  --security POLICY     Basic256Sha256 (default), Aes128_Sha256_RsaOaep,\n"
    "                        Aes256_Sha256_RsaPss, or None\n"
    "  --mode MODE           SignAndEncrypt (default), Sign, or None (with --security None)\n"
    "  --allow-insecure      accept --security None (nothing is signed or encrypted)\n"
    "  --pki-dir DIR         the PKI directory (own/ trusted/ issuers/ rejected/), the same\n"
    "                        as the plugin's pki_dir; default $STATE_DIRECTORY/opcua-pki,\n"
    "                        else /var/lib/ironbridge/opcua-pki\n"
    "  --application-uri URI our ApplicationUri (default urn:HOSTNAME:ironbridge)\n"
    "  --user NAME           log in as NAME (default anonymous)\n"
    "  --password-file FILE  the password: the file's first line (mode 0600)\n"
    "  --user-certificate FILE --user-private-key FILE\n"
    "                        log in with an X.509 user certificate and its key (PEM, 0600)\n"
    "  --certificate FILE --private-key FILE\n"
    "                        our application certificate and key instead of pki_dir/own\n"
    "  --root NODE           the node to start from (default i=85, the Objects folder)\n"
    "  --depth N             levels below the root to walk (default 10)\n"
    "  --all-namespaces      also list namespace 0 nodes (the Server object's diagnostics)\n"
    "  --timeout MS          connect and response timeout (default 5000)\n"
    "  -o, --output FILE     write the CSV to FILE instead of standard output\n"
    "  -h, --help            this help;  -V, --version  the version\n"
    "\n"
    "Exit status: 0 done, 1 the server could not be browsed (the reason on standard error),\n"
    "2 a usage error. See ironbridge-opcua-browse(1) and docs/opcua.md.\n";

static int parse_choice(const char *s, const char *const *names, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    fprintf(stderr, "ironbridge-opcua-browse: unknown %s '%s': use", what, s);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s %s", i ? "," : "", names[i]);
    fprintf(stderr, "\n");
    return -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"security", 1, NULL, 's'},
                                          {"mode", 1, NULL, 'm'},
                                          {"allow-insecure", 0, NULL, 'I'},
                                          {"pki-dir", 1, NULL, 'p'},
                                          {"application-uri", 1, NULL, 'a'},
                                          {"user", 1, NULL, 'u'},
                                          {"password-file", 1, NULL, 'P'},
                                          {"root", 1, NULL, 'r'},
                                          {"depth", 1, NULL, 'd'},
                                          {"all-namespaces", 0, NULL, 'A'},
                                          {"certificate", 1, NULL, 'c'},
                                          {"private-key", 1, NULL, 'k'},
                                          {"user-certificate", 1, NULL, 'C'},
                                          {"user-private-key", 1, NULL, 'K'},
                                          {"timeout", 1, NULL, 't'},
                                          {"output", 1, NULL, 'o'},
                                          {"help", 0, NULL, 'h'},
                                          {"version", 0, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:hV", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            o->policy = optarg;
            break;
        case 'm':
            o->mode = optarg;
            break;
        case 'I':
            o->allow_insecure = true;
            break;
        case 'p':
            o->pki_dir = optarg;
            break;
        case 'a':
            o->app_uri = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'P':
            o->password_file = optarg;
            break;
        case 'r':
            o->walk.root = optarg;
            break;
        case 'A':
            o->walk.all_ns0 = true;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'C':
            o->user_cert = optarg;
            break;
        case 'K':
            o->user_key = optarg;
            break;
        case 'd':
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < (c == 'd' ? 1 : 100) || v > (c == 'd' ? 64 : 600000)) {
                fprintf(stderr, "ironbridge-opcua-browse: --%s %s: give %s\n",
                        c == 'd' ? "depth" : "timeout", optarg,
                        c == 'd' ? "a number from 1 to 64" : "milliseconds, 100 to 600000");
                return 2;
            }
            if (c == 'd')
                o->walk.max_depth = (int)v;
            else
                o->timeout_ms = v;
            break;
        }
        case 'h':
            fputs(usage, stdout);
            exit(0);
        case 'V':
            printf("ironbridge-opcua-browse %s\n", OP_PLUGIN_VERSION);
            exit(0);
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || strncmp(argv[optind], "opc.tcp://", 10) != 0) {
        fprintf(stderr, "ironbridge-opcua-browse: give one endpoint URL, opc.tcp://host:port\n%s",
                usage);
        return 2;
    }
    o->url = argv[optind];
    return 0;
}

/* The password file's first line into pw; refused when group/other-readable. */
static int read_password(const char *path, char *pw, size_t size)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "ironbridge-opcua-browse: cannot read %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    if (st.st_mode & 077) {
        fclose(f);
        fprintf(stderr,
                "ironbridge-opcua-browse: %s is readable by group or others: chmod 600 it\n", path);
        return -1;
    }
    if (!fgets(pw, (int)size, f))
        pw[0] = '\0';
    fclose(f);
    pw[strcspn(pw, "\r\n")] = '\0';
    return 0;
}

struct conn {
    struct ua_channel ch;
    struct ua_session s;
    struct ua_session_config cfg;
    struct ua_sec sec;
    char app_uri[320], pki_dir[1024], password[512];
    const char *cert, *key;
    uint8_t *user_der;
};

static int open_secured(struct conn *k)
{
    struct ua_own_files own = {
        .pki_dir = k->pki_dir, .app_uri = k->app_uri, .cert = k->cert, .key = k->key};
    return ua_open_secured(&k->ch, &k->s, &k->cfg, &k->sec, &own);
}

static int connect_session(struct conn *k, const struct opts *o)
{
    int rc = IB_OK;
    if (k->sec.policy == UA_POLICY_NONE) {
        fprintf(stderr, "ironbridge-opcua-browse: warning: security policy None: the session "
                        "travels unsigned and unencrypted\n");
        rc = ua_channel_open(&k->ch, o->url);
        if (rc == IB_OK)
            rc = ua_session_endpoints(&k->ch, &k->s, &k->cfg);
        if (rc == IB_OK && (o->user || o->user_cert) && k->s.endpoint_cert)
            ua_sec_set_peer(&k->sec, k->s.endpoint_cert, k->s.endpoint_cert_len);
    } else {
        rc = open_secured(k);
    }
    if (rc == IB_OK)
        rc = ua_session_open(&k->ch, &k->s, &k->cfg);
    OPENSSL_cleanse(k->password, sizeof k->password);
    return rc;
}

static int setup(struct conn *k, const struct opts *o)
{
    static const char *const policies[UA_POLICY_COUNT] = {
        [UA_POLICY_NONE] = "None",
        [UA_POLICY_BASIC256SHA256] = "Basic256Sha256",
        [UA_POLICY_AES128_SHA256_RSAOAEP] = "Aes128_Sha256_RsaOaep",
        [UA_POLICY_AES256_SHA256_RSAPSS] = "Aes256_Sha256_RsaPss"};
    static const char *const modes[] = {"None", "Sign", "SignAndEncrypt"};
    int policy = parse_choice(o->policy, policies, UA_POLICY_COUNT, "security policy");
    int mode = parse_choice(o->mode, modes, 3, "security mode");
    if (policy < 0 || mode < 0)
        return 2;
    if ((policy == UA_POLICY_NONE) != (mode == 0)) {
        fprintf(stderr, "ironbridge-opcua-browse: --security None goes with --mode None only, "
                        "and --mode None with --security None only\n");
        return 2;
    }
    if (policy == UA_POLICY_NONE && !o->allow_insecure) {
        fprintf(stderr, "ironbridge-opcua-browse: --security None sends everything unsigned and "
                        "unencrypted: add --allow-insecure if you mean it\n");
        return 2;
    }
    if (!o->user != !o->password_file) {
        fprintf(stderr, "ironbridge-opcua-browse: --user and --password-file go together\n");
        return 2;
    }
    if ((!o->cert != !o->key) || (!o->user_cert != !o->user_key) || (o->user && o->user_cert)) {
        fprintf(stderr, "ironbridge-opcua-browse: --certificate goes with --private-key, "
                        "--user-certificate with --user-private-key, and not with --user\n");
        return 2;
    }
    if (o->password_file && read_password(o->password_file, k->password, sizeof k->password))
        return 1;
    char err[1024];
    size_t der_len = 0;
    if (o->user_cert && ua_pki_load(o->user_cert, o->user_key, &k->cfg.user_key, &k->user_der,
                                    &der_len, err, sizeof err) != 0) {
        fprintf(stderr, "ironbridge-opcua-browse: --user-certificate: %s\n", err);
        return 1;
    }
    k->cert = o->cert;
    k->key = o->key;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(k->app_uri, sizeof k->app_uri, "%s", o->app_uri ? o->app_uri : "");
    if (!o->app_uri)
        snprintf(k->app_uri, sizeof k->app_uri, "urn:%s:ironbridge", host);
    const char *state = getenv("STATE_DIRECTORY");
    if (o->pki_dir)
        snprintf(k->pki_dir, sizeof k->pki_dir, "%s", o->pki_dir);
    else if (state && *state)
        snprintf(k->pki_dir, sizeof k->pki_dir, "%.*s/opcua-pki", (int)strcspn(state, ":"), state);
    else
        snprintf(k->pki_dir, sizeof k->pki_dir, "/var/lib/ironbridge/opcua-pki");
    k->sec.policy = policy;
    k->sec.mode = mode + 1;
    k->cfg = (struct ua_session_config){.url = o->url,
                                        .application_uri = k->app_uri,
                                        .application_name = "ironbridge-opcua-browse",
                                        .session_name = "ironbridge-opcua-browse",
                                        .timeout_ms = 60000,
                                        .policy = policy,
                                        .mode = mode + 1,
                                        .user = o->user,
                                        .password = o->user ? k->password : NULL,
                                        .token_sec = &k->sec,
                                        .user_key = k->cfg.user_key,
                                        .user_cert = k->user_der,
                                        .user_cert_len = der_len};
    return ua_channel_init(&k->ch, 65535, 64u << 20, (uint32_t)o->timeout_ms, 600000) == IB_OK ? 0
                                                                                               : 1;
}

int main(int argc, char **argv)
{
    struct opts o = {.policy = "Basic256Sha256",
                     .mode = "SignAndEncrypt",
                     .timeout_ms = 5000,
                     .walk = {.max_depth = 10, .with_header = true}};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    static struct conn k;
    if ((rc = setup(&k, &o)) != 0)
        return rc;
    FILE *out = o.out ? fopen(o.out, "w") : stdout;
    if (!out) {
        fprintf(stderr, "ironbridge-opcua-browse: cannot write %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    long n = -1;
    uint32_t sc = 0;
    if (connect_session(&k, &o) != IB_OK) {
        sc = k.ch.last_status & 0xffff0000u;
    } else {
        fprintf(out, "# ironbridge-opcua-browse %s, from %s\n", o.url,
                o.walk.root ? o.walk.root : "i=85");
        n = ua_walk(&k.ch, &k.s, &o.walk, out);
        ua_session_close(&k.ch, &k.s);
    }
    ua_channel_close(&k.ch);
    if (n < 0 && o.user_cert && (sc == 0x80200000u || sc == 0x801F0000u || sc == 0x80570000u))
        fprintf(stderr,
                "ironbridge-opcua-browse: %s: %s (the server does not accept the user "
                "certificate %s: add it to its trusted user certificates)\n",
                o.url, k.ch.error, o.user_cert);
    else if (n < 0 && o.user && (sc == 0x801F0000u || sc == 0x80210000u || sc == 0x80200000u))
        fprintf(stderr,
                "ironbridge-opcua-browse: %s: %s (user '%s': wrong user name or "
                "password, or the user may not log in)\n",
                o.url, k.ch.error, o.user);
    else if (n < 0)
        fprintf(stderr, "ironbridge-opcua-browse: %s: %s\n", o.url, k.ch.error);
    else
        fprintf(stderr, "ironbridge-opcua-browse: %ld variables\n", n);
    ua_session_free(&k.s);
    ua_sec_clear(&k.sec);
    EVP_PKEY_free(k.cfg.user_key);
    OPENSSL_free(k.user_der);
    ua_channel_free(&k.ch);
    if ((o.out && fclose(out) != 0) || (!o.out && fflush(out) != 0))
        n = -1;
    return n < 0 ? 1 : 0;
}
