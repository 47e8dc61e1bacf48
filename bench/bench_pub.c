/* bench_pub: the practical MQTT publish limit of this machine, for the suite to compare the
 * gateway with: a raw paho (MQTTClient, synchronous) loop publishing SIZE-byte messages at QoS
 * 0 or 1 into the broker for SECONDS. Prints one JSON object. Delivered figures come from the
 * subscriber the suite runs beside it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTClient.h>

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_pub URL TOPIC SIZE QOS SECONDS\n");
        return 2;
    }
    const char *url = argv[1], *topic = argv[2];
    int size = atoi(argv[3]), qos = atoi(argv[4]);
    double seconds = atof(argv[5]);
    MQTTClient c;
    if (MQTTClient_create(&c, url, "bench-pub", MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTCLIENT_SUCCESS)
        return 1;
    MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    if (MQTTClient_connect(c, &co) != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "bench_pub: cannot connect to %s\n", url);
        return 1;
    }
    char *payload = malloc((size_t)size);
    /* A record-like body: "name":{"v":N,"q":"good","ts":...} repeated. */
    const char *unit = "\"t0000\":{\"v\":12345,\"q\":\"good\",\"ts\":1764163200120},";
    size_t ul = strlen(unit);
    for (int i = 0; i < size; i++)
        payload[i] = unit[(size_t)i % ul];
    uint64_t n = 0, errors = 0;
    double t0 = mono_s(), end = t0 + seconds;
    while (mono_s() < end) {
        MQTTClient_deliveryToken tok;
        int rc = MQTTClient_publish(c, topic, size, payload, qos, 0, &tok);
        if (rc == MQTTCLIENT_SUCCESS && qos > 0)
            rc = MQTTClient_waitForCompletion(c, tok, 10000);
        if (rc == MQTTCLIENT_SUCCESS)
            n++;
        else
            errors++;
    }
    double el = mono_s() - t0;
    printf("{\"size\":%d,\"qos\":%d,\"seconds\":%.3f,\"messages\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"messages_per_s\":%.0f,\"bytes_per_s\":%.0f}\n",
           size, qos, el, n, errors, (double)n / el, (double)n * size / el);
    MQTTClient_disconnect(c, 1000);
    MQTTClient_destroy(&c);
    free(payload);
    return 0;
}
