/* ironbridge: the daemon's entry point. Reads the command line, loads and validates the
 * configuration tree, then does what was asked: --check, --once, --list-plugins, --sign-config,
 * --sign-command, --write, --read, or run the daemon (daemon.c). */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "command.h"
#include "config.h"
#include "config_hash.h"
#include "daemon.h"
#include "diag.h"
#include "gateway.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_list.h"
#include "plugin_loader.h"
#include "remote.h"
#include "status_client.h"
#include "tree.h"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_BAD_TAGS = 3 };

static void print_diag(const struct ib_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
    size_t total = ib_diag_total(d);
    if (total)
        fprintf(stderr, "ironbridge: %zu configuration error%s\n", total, total == 1 ? "" : "s");
}

/* --sign-config: the operator's side of remote_config (docs/remote-config.md). */
static int sign_config(const struct ib_cli *o)
{
    char err[4600];
    if (ib_signed_sign_file(o->sign_command ? &ib_signed_command : &ib_signed_config, o->sign_file,
                            o->sign_version, o->sign_key, err, sizeof err) < 0) {
        fprintf(stderr, "ironbridge: %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

/* Signals are handled by the event loop: block them before any thread exists so that every
 * thread inherits the mask. Until then (loading the configuration, --check, --once) SIGINT and
 * SIGTERM keep their default action, so Ctrl-C stops a check that reads a slow file. */
static void block_signals(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
}

static void print_valid(const struct ib_cli *o, const struct ib_config *cfg,
                        const struct ib_tree_info *tree)
{
    char hash[65];
    ib_config_hash_hex(cfg, hash);
    printf("%s: valid: %zu file%s, gateway %s, %zu connections, %zu devices, %zu groups, "
           "%zu tags, config sha256 %s\n",
           o->config, cfg->n_files, cfg->n_files == 1 ? "" : "s", cfg->gateway_id,
           cfg->n_connections, cfg->n_devices, cfg->n_groups, cfg->n_tags, hash);
    if (tree->kept)
        printf("signed configuration version %llu included from %s\n",
               (unsigned long long)tree->remote_version, tree->remote_path);
}

static int refused(const struct ib_cli *o, struct ib_diag *diag)
{
    print_diag(diag);
    if (o->check)
        fprintf(stderr, "ironbridge: %s is NOT valid\n", o->config);
    else
        fprintf(stderr,
                "ironbridge: refusing to start; fix the configuration (check it "
                "with `ironbridge --check -c %s`)\n",
                o->config);
    return EXIT_CONFIG;
}

static int run(const struct ib_cli *o, struct ib_plugin_registry *plugins)
{
    struct ib_diag diag = {0};
    struct ib_tree_info tree;
    struct ib_config *cfg = ib_tree_load(o->config, plugins, &diag, NULL, &tree);
    struct ib_gateway *gw = cfg ? ib_gateway_create(cfg, &diag) : NULL;
    int rc = 0;
    if (!cfg || !gw) {
        rc = refused(o, &diag);
    } else {
        if (o->log_level < 0)
            ib_log_set_level(cfg->log_level);
        /* Loading freed its YAML trees; glibc keeps freed heap pages until asked. */
        malloc_trim(0);
        if (o->check) {
            print_valid(o, cfg, &tree);
        } else if (o->write_spec || o->read_spec) {
            rc = ib_command_cli(gw, o->write_spec ? o->write_spec : o->read_spec, !o->write_spec,
                                stdout);
        } else if (o->once) {
            rc = ib_gateway_once(gw, stdout) ? 0 : EXIT_BAD_TAGS;
        } else {
            block_signals();
            struct ib_daemon d = {.gw = gw,
                                  .cfg = ib_config_ref(cfg),
                                  .path = o->config,
                                  .plugins = plugins,
                                  .fixed_log_level = o->log_level >= 0,
                                  .tree = tree};
            rc = ib_daemon_run(&d);
            ib_config_free(d.cfg);
        }
    }
    ib_gateway_free(gw);
    ib_config_free(cfg);
    ib_diag_free(&diag);
    return rc;
}

int main(int argc, char **argv)
{
    struct ib_cli o = {0};
    if (ib_cli_parse(argc, argv, &o) < 0)
        return EXIT_USAGE;
    ib_log_init(o.log_level >= 0 ? o.log_level : IB_LOG_INFO);
    if (o.sign_file)
        return sign_config(&o);
    if (o.status) {
        char def[128];
        return ib_status_client_run(o.status_socket ? o.status_socket
                                                    : ib_status_client_default(def, sizeof def),
                                    o.json, stdout);
    }
    /* SIGPIPE from a dropped socket must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    const char *pdir = o.plugin_dir ? o.plugin_dir : getenv("IRONBRIDGE_PLUGIN_DIR");
    /* --plugin-dir (or $IRONBRIDGE_PLUGIN_DIR) wins over gateway.plugin_dir in the config. */
    struct ib_plugin_registry *plugins =
        ib_plugins_new(pdir ? pdir : ib_plugins_default_dir(), pdir != NULL);
    if (!plugins) {
        fprintf(stderr, "ironbridge: out of memory\n");
        return EXIT_CONFIG;
    }
    int rc = o.list_plugins ? ib_plugin_list(plugins, o.list_only, o.markdown,
                                             pdir ? pdir : ib_plugins_default_dir())
                            : run(&o, plugins);
    ib_plugins_free(plugins);
    return rc;
}
