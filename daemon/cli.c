/* The daemon's command line: its options, their parsing and --help. */
#include "cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ib_build_config.h"
#include "log.h"
#include "remote.h"

void ib_cli_usage(FILE *f)
{
    fprintf(f,
            "Usage: ironbridge [OPTIONS]\n"
            "       ironbridge status [--json] [--socket PATH]\n"
            "Industrial IoT gateway: polls field devices through protocol plugins (Modbus TCP,\n"
            "RTU and RTU over TCP), normalizes the values and publishes them to an MQTT broker\n"
            "over TLS.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE     configuration file (default: %s),\n"
            "                        with the drop-ins conf.d/*.yaml beside it\n"
            "      --check           validate the configuration, print every error, and exit:\n"
            "                        0 when valid (a summary is printed), 1 when not\n"
            "      --once            poll every tag once, print a table (tag, raw, value,\n"
            "                        unit, quality) and exit; nothing is published; exit\n"
            "                        status 0 when every tag was good, 3 when any was bad\n"
            "      --list-plugins[=NAME]\n"
            "                        list the plugins in the plugin directory (or only NAME)\n"
            "                        with version, ABI and configuration keys (type, default,\n"
            "                        range, description), and exit\n"
            "      --format FORMAT   for --list-plugins: text (default) or markdown\n"
            "      --plugin-dir DIR  load plugins from DIR (default: %s,\n"
            "                        or the build tree's when run from it)\n"
            "      --log-level LEVEL error, warning, notice, info or debug (overrides log.level)\n"
            "      --sign-config FILE --key PRIVATE.pem --sign-version N\n"
            "                        print FILE as a signed configuration document (Ed25519) for\n"
            "                        remote_config, to publish to the gateway's config topic;\n"
            "                        N (1 to 2^53) must grow with every document\n"
            "      --sign-command FILE --key PRIVATE.pem\n"
            "                        print the JSON request in FILE as a signed command for\n"
            "                        commands.require_signature (docs/commands.md)\n"
            "      --write DEVICE.TAG=VALUE\n"
            "                        write one tag now through the same checks as a command\n"
            "                        from the platform (writable, limits, type), read it back\n"
            "                        and print the answer as JSON; nothing is published;\n"
            "                        exit status 0 when ok, 4 when refused or failed\n"
            "      --read DEVICE.TAG read one tag from the device now and print it as JSON\n"
            "      status, --status  ask the running daemon through its status socket and print\n"
            "                        one line per device (state, since, reason, last good\n"
            "                        poll, values/s), then the store and the broker; exit\n"
            "                        status 0 healthy, 1 degraded, 2 down, 4 no daemon\n"
            "                        answers (docs/observability.md)\n"
            "      --json            for status: the report as one JSON document\n"
            "      --socket PATH     for status: the daemon's socket (default:\n"
            "                        $RUNTIME_DIRECTORY/status.sock, else\n"
            "                        /run/ironbridge/status.sock)\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Signals: SIGTERM and SIGINT stop cleanly, delivering what is queued first;\n"
            "SIGHUP reloads the configuration (only what changed is restarted).\n"
            "Exit status: 0 on success, 1 for a configuration error, 2 for a usage error,\n"
            "3 when --once read a bad tag, 4 when --write or --read was refused or failed;\n"
            "status: 0 healthy, 1 degraded, 2 down, 4 no daemon answers.\n"
            "Documentation: ironbridge(8), ironbridge.yaml(5), docs/ (plugin-abi.md,\n"
            "writing-plugins.md, isolation.md); examples in %s.\n",
            IB_CONFIG_FILE, IB_PLUGIN_DIR, IB_EXAMPLES_DIR);
}

int ib_cli_parse(int argc, char **argv, struct ib_cli *o)
{
    enum {
        O_CHECK = 256,
        O_ONCE,
        O_PLUGIN_DIR,
        O_LOG_LEVEL,
        O_LIST,
        O_SIGN,
        O_KEY,
        O_SIGN_VER,
        O_SIGN_CMD,
        O_WRITE,
        O_READ,
        O_FORMAT,
        O_STATUS,
        O_JSON,
        O_SOCKET
    };
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, O_CHECK},
        {"once", no_argument, NULL, O_ONCE},
        {"list-plugins", optional_argument, NULL, O_LIST},
        {"format", required_argument, NULL, O_FORMAT},
        {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"sign-config", required_argument, NULL, O_SIGN},
        {"key", required_argument, NULL, O_KEY},
        {"sign-version", required_argument, NULL, O_SIGN_VER},
        {"sign-command", required_argument, NULL, O_SIGN_CMD},
        {"write", required_argument, NULL, O_WRITE},
        {"read", required_argument, NULL, O_READ},
        {"status", no_argument, NULL, O_STATUS},
        {"json", no_argument, NULL, O_JSON},
        {"socket", required_argument, NULL, O_SOCKET},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->config = IB_CONFIG_FILE;
    o->log_level = -1;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case O_CHECK:
            o->check = true;
            break;
        case O_ONCE:
            o->once = true;
            break;
        case O_LIST:
            o->list_plugins = true;
            o->list_only = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "markdown") == 0) {
                o->markdown = true;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "ironbridge: --format is text or markdown, not '%s'\n", optarg);
                return -1;
            }
            break;
        case O_STATUS:
            o->status = true;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_SOCKET:
            o->status_socket = optarg;
            break;
        case O_PLUGIN_DIR:
            o->plugin_dir = optarg;
            break;
        case O_SIGN:
            o->sign_file = optarg;
            break;
        case O_SIGN_CMD:
            o->sign_file = optarg;
            o->sign_command = true;
            break;
        case O_WRITE:
            o->write_spec = optarg;
            break;
        case O_READ:
            o->read_spec = optarg;
            break;
        case O_KEY:
            o->sign_key = optarg;
            break;
        case O_SIGN_VER: {
            char *end;
            o->sign_version = strtoull(optarg, &end, 10);
            if (*end || !o->sign_version || o->sign_version > IB_REMOTE_MAX_VERSION ||
                !isdigit((unsigned char)optarg[0])) {
                fprintf(stderr, "ironbridge: --sign-version needs a whole number from 1 to "
                                "9007199254740992 (2^53)\n");
                return -1;
            }
            break;
        }
        case O_LOG_LEVEL:
            o->log_level = ib_log_level_parse(optarg);
            if (o->log_level < 0) {
                fprintf(stderr,
                        "ironbridge: unknown log level '%s' (error, warning, notice, info, "
                        "debug)\n",
                        optarg);
                return -1;
            }
            break;
        case 'V':
            printf("ironbridge %s (plugin ABI %d.%d)\n", IB_VERSION, IB_ABI_MAJOR, IB_ABI_MINOR);
            exit(0);
        case 'h':
            ib_cli_usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "Try 'ironbridge --help'.\n");
            return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind], "status") == 0) {
        o->status = true;
        optind++;
    }
    if (optind < argc) {
        fprintf(stderr, "ironbridge: unexpected argument '%s'. Try 'ironbridge --help'.\n",
                argv[optind]);
        return -1;
    }
    if (o->sign_command && !o->sign_version)
        o->sign_version = 1; /* commands: the version is not checked (ids and ts are) */
    if (o->sign_command && !o->sign_key) {
        fprintf(stderr, "ironbridge: --sign-command FILE needs --key PRIVATE.pem\n");
        return -1;
    }
    if (o->sign_file && (!o->sign_key || !o->sign_version)) {
        fprintf(stderr, "ironbridge: --sign-config FILE needs --key PRIVATE.pem and "
                        "--sign-version N\n");
        return -1;
    }
    if ((o->json || o->status_socket) && !o->status) {
        fprintf(stderr, "ironbridge: --json and --socket go with status\n");
        return -1;
    }
    if (o->check + o->once + o->list_plugins + !!o->sign_file + !!o->write_spec + !!o->read_spec +
            o->status >
        1) {
        fprintf(stderr, "ironbridge: --check, --once, --list-plugins, --write, --read and status "
                        "exclude each other\n");
        return -1;
    }
    return 0;
}
