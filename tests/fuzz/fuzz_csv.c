/* fuzz_csv.c: fuzz target of CSV tag lists: the input is the file a Modbus group names with
 * `tags_csv:`, loaded through the configuration loader (ib_config_load) with the real plugin's
 * schemas, so every cell goes through the CSV parser and then the tag validation. */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_util.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"

static const char main_yaml[] = "north:\n"
                                "  mqtt:\n"
                                "    url: mqtt://127.0.0.1:1883\n"
                                "connections:\n"
                                "  - name: plc\n"
                                "    plugin: modbus\n"
                                "    host: 127.0.0.1\n"
                                "    port: 502\n"
                                "    devices:\n"
                                "      - name: meter\n"
                                "        unit_id: 1\n"
                                "        groups:\n"
                                "          - name: fast\n"
                                "            interval_ms: 1000\n"
                                "            tags_csv: tags.csv\n";

static struct ib_plugin_registry *plugins;
static char main_path[512], csv_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ib_log_init(IB_LOG_ERR);
    const char *dir = getenv("IB_FUZZ_PLUGIN_DIR");
    plugins = ib_plugins_new(dir ? dir : IB_BUILD_PLUGIN_DIR, true);
    fz_path(main_path, sizeof main_path, "ironbridge.yaml");
    fz_path(csv_path, sizeof csv_path, "tags.csv");
    fz_write(main_path, main_yaml, sizeof main_yaml - 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(csv_path, data, size);
    struct ib_diag diag = {0};
    ib_config_free(ib_config_load(main_path, plugins, &diag));
    ib_diag_free(&diag);
    return 0;
}
