/* The configuration tree as the daemon runs it: the main file, conf.d, and the signed document
 * kept in the state directory standing for conf.d/NAME (docs/remote-config.md). Every load
 * goes through here: start, --check, --once, a reload and a new signed document. */
#include "tree.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void legacy_version(const struct ib_config *cfg, uint64_t *version)
{
    /* Before the state directory, an applied document was written to conf.d/NAME: if it is
     * still there (and nothing newer is kept), its version still guards against replays. */
    char path[4352];
    if (!cfg->dropin_dir || !cfg->remote.file)
        return;
    snprintf(path, sizeof path, "%s/%s", cfg->dropin_dir, cfg->remote.file);
    *version = ib_remote_file_version(path);
}

struct ib_config *ib_tree_load(const char *path, struct ib_plugin_registry *plugins,
                               struct ib_diag *diag, const struct ib_tree_doc *doc,
                               struct ib_tree_info *info)
{
    memset(info, 0, sizeof *info);
    ib_remote_dir(info->remote_dir, sizeof info->remote_dir);
    struct ib_remote_stored kept = {0};
    struct ib_config_extra extra = {0};
    if (doc) {
        snprintf(info->remote_path, sizeof info->remote_path, "%s/%s", info->remote_dir, doc->name);
        extra = (struct ib_config_extra){
            .name = doc->name, .text = doc->text, .shown_as = info->remote_path};
        info->remote_version = doc->version;
        info->kept = true; /* once applied, it is the kept one */
    } else {
        char err[4600];
        int r = ib_remote_stored_read(info->remote_dir, &kept, err, sizeof err);
        if (r < 0 && errno == EACCES) {
            /* e.g. `ironbridge --check` by a user who may not read the state directory */
            ib_warn("%s; the signed document kept there, if any, is left out", err);
        } else if (r < 0) {
            ib_diag_add(diag, NULL, NULL, "%s", err);
        } else if (r > 0) {
            snprintf(info->remote_path, sizeof info->remote_path, "%s", kept.path);
            extra = (struct ib_config_extra){
                .name = kept.name, .text = kept.text.p, .shown_as = kept.path};
            info->remote_version = kept.version;
            info->kept = true;
        }
    }
    struct ib_config *cfg = ib_config_load_ex(path, plugins, diag, extra.name ? &extra : NULL);
    ib_remote_stored_free(&kept);
    if (cfg && !doc && !info->kept)
        legacy_version(cfg, &info->remote_version);
    return cfg;
}
