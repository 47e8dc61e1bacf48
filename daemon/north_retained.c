/* The north's retained config-status and health messages: the latest of each, published once on
 * each connection and again whenever it changes. */
#include "north_impl.h"

#include <stdlib.h>
#include <string.h>

/* Publish the config-status message if it changed or was not sent on this connection. */
void north_send_cfgstat(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    char *p = n->cfgstat && !n->cfgstat_sent ? strdup(n->cfgstat) : NULL;
    n->cfgstat_sent = true;
    pthread_mutex_unlock(&n->mu);
    if (p && north_publish(n, n->cfgstat_topic, p, strlen(p), 1, 1, 0) != 0) {
        pthread_mutex_lock(&n->mu);
        n->cfgstat_sent = false;
        pthread_mutex_unlock(&n->mu);
    }
    free(p);
}

/* The same for the health message. */
void north_send_health(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    bool due = n->health && n->health_topic && !n->health_sent;
    char *p = due ? strdup(n->health) : NULL, *t = due ? strdup(n->health_topic) : NULL;
    n->health_sent = true;
    pthread_mutex_unlock(&n->mu);
    if (p && t && north_publish(n, t, p, strlen(p), 1, 1, 0) != 0) {
        pthread_mutex_lock(&n->mu);
        n->health_sent = false;
        pthread_mutex_unlock(&n->mu);
    }
    free(p);
    free(t);
}

void ib_north_set_config_status(struct ib_north *n, const char *json)
{
    char *p = strdup(json);
    if (!p)
        return;
    pthread_mutex_lock(&n->mu);
    free(n->cfgstat);
    n->cfgstat = p;
    n->cfgstat_sent = false;
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
}

void ib_north_set_health(struct ib_north *n, const char *topic, const char *json)
{
    char *p = strdup(json), *t = strdup(topic);
    if (!p || !t) {
        free(p);
        free(t);
        return;
    }
    pthread_mutex_lock(&n->mu);
    free(n->health);
    free(n->health_topic);
    n->health = p;
    n->health_topic = t;
    n->health_sent = false;
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
}
