/* bench_pub: the practical MQTT publish limit of this machine, for the suite to compare the
 * gateway with: a raw paho MQTTAsync loop publishing SIZE-byte messages at QoS 0 or 1 into the
 * broker for SECONDS, keeping at most WINDOW messages handed to paho and not yet completed (as
 * the gateway's north does with max_inflight). Prints one JSON object; delivered figures come
 * from the subscriber the suite runs beside it. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

static atomic_long done, failed, outstanding;
static atomic_int state; /* 0 connecting, 1 connected, -1 failed */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&done, 1);
    atomic_fetch_sub(&outstanding, 1);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&failed, 1);
    atomic_fetch_sub(&outstanding, 1);
}

static void on_conn(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&state, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&state, -1);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench_pub URL TOPIC SIZE QOS SECONDS WINDOW\n");
        return 2;
    }
    const char *url = argv[1], *topic = argv[2];
    int size = atoi(argv[3]), qos = atoi(argv[4]), window = atoi(argv[6]);
    double seconds = atof(argv[5]);
    MQTTAsync c;
    if (MQTTAsync_create(&c, url, "bench-pub", MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTASYNC_SUCCESS)
        return 1;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.maxInflight = window + 4;
    co.onSuccess = on_conn;
    co.onFailure = on_conn_fail;
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS)
        return 1;
    for (int i = 0; i < 1000 && atomic_load(&state) == 0; i++)
        usleep(10000);
    if (atomic_load(&state) != 1) {
        fprintf(stderr, "bench_pub: cannot connect to %s\n", url);
        return 1;
    }
    char *payload = malloc((size_t)size);
    /* A record-like body: "name":{"v":N,"q":"good","ts":...} repeated. */
    const char *unit = "\"t0000\":{\"v\":12345,\"q\":\"good\",\"ts\":1764163200120},";
    size_t ul = strlen(unit);
    for (int i = 0; i < size; i++)
        payload[i] = unit[(size_t)i % ul];
    double t0 = mono_s(), end = t0 + seconds;
    while (mono_s() < end) {
        if (atomic_load(&outstanding) >= window) {
            usleep(50);
            continue;
        }
        MQTTAsync_message m = MQTTAsync_message_initializer;
        m.payload = payload;
        m.payloadlen = size;
        m.qos = qos;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_ok;
        ro.onFailure = on_fail;
        atomic_fetch_add(&outstanding, 1);
        if (MQTTAsync_sendMessage(c, topic, &m, &ro) != MQTTASYNC_SUCCESS) {
            atomic_fetch_sub(&outstanding, 1);
            atomic_fetch_add(&failed, 1);
            usleep(1000);
        }
    }
    double el = mono_s() - t0;
    long n = atomic_load(&done);
    printf("{\"client\":\"paho MQTTAsync\",\"size\":%d,\"qos\":%d,\"window\":%d,\"seconds\":%.3f,"
           "\"messages\":%ld,\"errors\":%ld,\"messages_per_s\":%.0f,\"bytes_per_s\":%.0f}\n",
           size, qos, window, el, n, atomic_load(&failed), (double)n / el,
           (double)n * size / el);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(c, &d);
    usleep(200000);
    MQTTAsync_destroy(&c);
    free(payload);
    return 0;
}
