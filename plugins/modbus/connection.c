/* The connection's state as the log tells it: opening (at open(), or at each poll with
 * close_after_poll) and losing the link, each a failure episode (ib_episode) that is logged when
 * it starts, changes, as a reminder, and once when it ends. */
#include <errno.h>
#include <inttypes.h>

#include "instance.h"

static int64_t now_ms(const struct mb_instance *in)
{
    return in->host->monotonic_ms();
}

void mb_note_connection_lost(struct mb_instance *in, const struct mb_device *dev, int e)
{
    struct ib_episode *ep = &in->loss_ep;
    const char *dn = dev ? dev->name : NULL;
    switch (ib_episode_fail(ep, e, now_ms(in))) {
    case IB_EPISODE_STARTED:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL,
               "connection to %s lost: %s; it is reopened, and further losses are counted and "
               "logged when the cause changes or the connection holds again",
               mb_link_name(in->link), mb_errtext(e));
        break;
    case IB_EPISODE_CHANGED:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL, "connection to %s lost again, now: %s",
               mb_link_name(in->link), mb_errtext(e));
        break;
    case IB_EPISODE_REMIND:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL,
               "connection to %s still lost after every few requests: %" PRIu64
               " losses in %" PRId64 " s (%s)",
               mb_link_name(in->link), ep->count, ib_episode_age_s(ep, now_ms(in)), mb_errtext(e));
        break;
    default:
        break;
    }
}

void mb_note_link_held(struct mb_instance *in)
{
    if (!in->loss_ep.active || (!in->close_after_poll && in->polls_on_link < 2))
        return;
    if (ib_episode_ok(&in->loss_ep, now_ms(in)) == IB_EPISODE_ENDED)
        MB_LOG(in, IB_LOG_NOTICE, NULL, NULL,
               "connection to %s holds again (it was lost %" PRIu64 " time(s) in %" PRId64 " s)",
               mb_link_name(in->link), in->loss_ep.count,
               ib_episode_age_s(&in->loss_ep, now_ms(in)));
}

void mb_note_opened(struct mb_instance *in, int level)
{
    in->polls_on_link = 0;
    if (ib_episode_ok(&in->open_ep, now_ms(in)) == IB_EPISODE_ENDED) {
        MB_LOG(in, IB_LOG_NOTICE, NULL, NULL,
               "connected to %s again, after %" PRIu64 " failed attempt(s) in %" PRId64 " s",
               mb_link_name(in->link), in->open_ep.count,
               ib_episode_age_s(&in->open_ep, now_ms(in)));
        return;
    }
    if (level >= 0)
        MB_LOG(in, in->loss_ep.active ? IB_LOG_DEBUG : level, NULL, NULL, "connected to %s again",
               mb_link_name(in->link));
}

int mb_ensure_open(struct mb_instance *in)
{
    if (mb_link_is_open(in->link))
        return 0;
    /* Without close_after_poll a closed link was lost: reopening it is the daemon's, with its
     * back-off. */
    if (!in->close_after_poll)
        return IB_ERR_CONNECTION;
    int err = mb_link_open(in->link);
    if (err == 0) {
        /* close_after_poll opens at every poll: that is routine, not news. */
        mb_note_opened(in, -1);
        return 0;
    }
    mb_log_open_error(in, err);
    return IB_ERR_CONNECTION;
}

static const char *open_error_text(int err)
{
    return err == ECONNREFUSED ? "connection refused"
           : err == ETIMEDOUT  ? "no answer within connect_timeout_ms"
           : err == ENOTTY     ? "the port has no RS-485 mode (rs485: true)"
                               : mb_errtext(err);
}

void mb_log_open_error(struct mb_instance *in, int err)
{
    /* The daemon retries with back-off: logged when the failure starts or its cause changes,
     * and reminded now and then with the count. */
    const char *verb = mb_link_kind(in->link) == MB_LINK_RTU ? "open" : "connect to";
    struct ib_episode *ep = &in->open_ep;
    switch (ib_episode_fail(ep, err, now_ms(in))) {
    case IB_EPISODE_STARTED:
    case IB_EPISODE_CHANGED:
        MB_LOG(in, IB_LOG_WARNING, NULL, NULL, "cannot %s %s: %s", verb, mb_link_name(in->link),
               open_error_text(err));
        break;
    case IB_EPISODE_REMIND:
        MB_LOG(in, IB_LOG_WARNING, NULL, NULL,
               "still cannot %s %s: %s (%" PRIu64 " attempts in %" PRId64 " s)", verb,
               mb_link_name(in->link), open_error_text(err), ep->count,
               ib_episode_age_s(ep, now_ms(in)));
        break;
    default:
        break;
    }
}
