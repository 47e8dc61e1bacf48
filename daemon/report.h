/* Report by exception: decides per tag and poll whether a sample is sent (always, on change,
 * deadband, heartbeat, quality changes at once) and turns long failures into one "stale". */
#ifndef IB_REPORT_H
#define IB_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/value.h>

enum ib_report_mode {
    IB_REPORT_ALWAYS = 0,    /* every poll */
    IB_REPORT_ON_CHANGE = 1, /* when the value differs at all */
    IB_REPORT_DEADBAND = 2,  /* when a number moved by more than the deadband since last sent */
};

/* How a tag is reported, resolved from its group's report section and its own keys. */
struct ib_report_cfg {
    uint8_t mode;         /* enum ib_report_mode */
    double deadband;      /* absolute, in the tag's (scaled) unit; a percent is resolved */
    int64_t heartbeat_ms; /* re-send an unchanged value after this long; 0: never */
};

/* What was last sent for a tag. Strings are copied into memory the state owns, which grows
 * only when a longer string comes (not per poll). Zero-initialize; free with
 * ib_report_state_free. */
struct ib_report_state {
    struct ib_value last; /* last value sent (when last_q is good) */
    char *str;            /* backing store of last.v.s */
    uint32_t str_cap;
    uint8_t last_q, last_reason;
    uint16_t last_code;
    bool sent_any;
    int64_t last_sent_ms; /* monotonic */
    int64_t last_good_ms; /* monotonic; the start time until the first good read */
};

void ib_report_state_init(struct ib_report_state *st, int64_t now_ms);
void ib_report_state_free(struct ib_report_state *st);

/* Decide for one normalized sample `s` at monotonic time `now_ms`: returns true if it is to be
 * sent, and then records it as sent. A bad sample of a tag not read successfully for
 * `stale_after_ms` becomes quality stale (its reason kept), reported once. */
bool ib_report_decide(const struct ib_report_cfg *c, struct ib_report_state *st,
                      struct ib_sample *s, int64_t now_ms, int64_t stale_after_ms);

#endif
