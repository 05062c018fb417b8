/* libFuzzer driver for request decoding: arbitrary bytes as a PutEvents
 * request, and every event in it through the JSON view that patterns
 * match. Any crash, leak or sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cebus/v1/eventbus.pb-c.h"
#include "cejson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Cebus__V1__PutEventsRequest *req = cebus__v1__put_events_request__unpack(NULL, size, data);

    if (!req)
        return 0;
    for (size_t i = 0; i < req->n_events; i++) {
        char *s = ce_to_json_string(req->events[i]);
        free(s);
    }
    cebus__v1__put_events_request__free_unpacked(req, NULL);
    return 0;
}
