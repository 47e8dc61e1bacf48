/* ironbridge-plugin-test: the plugin author's harness. Loads one plugin alone (with the daemon's
 * ABI checks), validates a configuration against its schemas, polls N times and prints every
 * sample; no broker, no daemon. See docs/writing-plugins.md. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "diag.h"
#include "gateway.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: ironbridge-plugin-test [OPTIONS] PLUGIN.so CONFIG.yaml\n"
               "Loads PLUGIN.so as the daemon would (ABI checks included), validates CONFIG.yaml\n"
               "(an ironbridge configuration; its connections name the plugin, and the `north`\n"
               "section may be left out), polls every group N times and prints each sample.\n"
               "\n"
               "Options:\n"
               "  -n, --polls N         polls of every group (default 1)\n"
               "  -i, --interval DUR    pause between polls, e.g. 500ms, 2s (default 1s)\n"
               "  -j, --json            one JSON object per sample and line instead of a table\n"
               "      --log-level LEVEL error, warning, notice, info or debug (default info);\n"
               "                        the plugin's log goes to stderr\n"
               "  -h, --help            print this help and exit\n"
               "\n"
               "Exit status: 0 when every sample was good, 3 when some were bad, 1 when the\n"
               "plugin or the configuration was refused (the reasons are printed), 2 for usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"polls", required_argument, NULL, 'n'}, {"interval", required_argument, NULL, 'i'},
        {"json", no_argument, NULL, 'j'},        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    struct ib_poll_opts o = {.polls = 1, .interval_ms = 1000};
    int level = IB_LOG_INFO;
    int c;
    while ((c = getopt_long(argc, argv, "n:i:jh", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n':
            o.polls = (unsigned)strtoul(optarg, &end, 10);
            if (*end || !o.polls) {
                fprintf(stderr, "ironbridge-plugin-test: --polls needs a number above 0\n");
                return 2;
            }
            break;
        case 'i':
            if (ib_units_parse_duration_ms(optarg, &o.interval_ms) < 0) {
                fprintf(stderr,
                        "ironbridge-plugin-test: --interval needs a duration with a unit "
                        "(500ms, 2s), found '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'j':
            o.json = true;
            break;
        case 'L':
            level = ib_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "ironbridge-plugin-test: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    ib_log_init(level);
    char so[PATH_MAX];
    if (!realpath(argv[optind], so)) {
        fprintf(stderr, "ironbridge-plugin-test: cannot find %s\n", argv[optind]);
        return 1;
    }
    char dirbuf[PATH_MAX], basebuf[PATH_MAX];
    strcpy(dirbuf, so);
    strcpy(basebuf, so);
    const char *dir = dirname(dirbuf);
    char *name = basename(basebuf);
    size_t len = strlen(name);
    if (len < 4 || strcmp(name + len - 3, ".so") != 0) {
        fprintf(stderr, "ironbridge-plugin-test: %s: a plugin file is NAME.so\n", so);
        return 2;
    }
    name[len - 3] = '\0';

    struct ib_plugin_registry *reg = ib_plugins_new(dir, true);
    char err[1024];
    const struct ib_plugin *p = reg ? ib_plugins_get(reg, name, err, sizeof err) : NULL;
    if (!p) {
        fprintf(stderr, "ironbridge-plugin-test: %s\n", reg ? err : "out of memory");
        ib_plugins_free(reg);
        return 1;
    }
    fprintf(stderr, "plugin %s %s (ABI %u.%u, this harness %d.%d) from %s\n", p->name, p->version,
            p->abi_major, p->abi_minor, IB_ABI_MAJOR, IB_ABI_MINOR, so);

    struct ib_diag diag = {0};
    struct ib_config_extra no_north = {.north_optional = true};
    struct ib_config *cfg = ib_config_load_ex(argv[optind + 1], reg, &diag, &no_north);
    struct ib_gateway *gw = cfg ? ib_gateway_create(cfg, &diag) : NULL;
    int rc = 1;
    if (gw) {
        struct ib_poll_counts n;
        ib_gateway_poll_print(gw, &o, stdout, &n);
        fprintf(stderr, "%zu samples, %zu good, %zu bad\n", n.samples, n.good, n.samples - n.good);
        rc = n.good == n.samples ? 0 : 3;
    } else {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.msgs[i]);
        fprintf(stderr, "ironbridge-plugin-test: %s is not valid for this plugin\n",
                argv[optind + 1]);
    }
    ib_gateway_free(gw);
    ib_config_free(cfg);
    ib_diag_free(&diag);
    ib_plugins_free(reg);
    return rc;
}
