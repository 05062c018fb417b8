/* Integration fixtures: calls with arbitrary request bytes over the gRPC C
 * core, for hostile-input tests that libcebus (which only sends valid
 * messages) cannot make. See harness.h. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

int h_call_raw(const char *addr, const char *api_key, const char *method, const void *body,
               size_t len, int timeout_ms, size_t *resp_len, cebus_error *err)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(addr, creds, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice method_slice = grpc_slice_from_copied_string(method);
    grpc_slice payload = grpc_slice_from_copied_buffer(body, len);
    grpc_byte_buffer *send_buf = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_byte_buffer *recv_buf = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_slice details = grpc_empty_slice();
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    char auth[512];
    grpc_metadata md;
    grpc_op ops[6];
    grpc_call *call;
    grpc_event ev;
    size_t dlen;
    int tag = 0;

    grpc_channel_credentials_release(creds);
    grpc_slice_unref(payload);
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    call = grpc_channel_create_call(
        channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice, NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN)),
        NULL);
    grpc_slice_unref(method_slice);

    memset(&md, 0, sizeof md);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (api_key) {
        snprintf(auth, sizeof auth, "Bearer %s", api_key);
        md.key = grpc_slice_from_static_string("authorization");
        md.value = grpc_slice_from_static_string(auth);
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_buf;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_buf;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        status = GRPC_STATUS_INTERNAL;
        snprintf(err->message, sizeof err->message, "grpc_call_start_batch failed");
    } else {
        /* The call's deadline bounds the wait. */
        ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        (void)ev;
        dlen = GRPC_SLICE_LENGTH(details);
        if (dlen >= sizeof err->message)
            dlen = sizeof err->message - 1;
        memcpy(err->message, GRPC_SLICE_START_PTR(details), dlen);
        err->message[dlen] = '\0';
    }
    err->code = (int)status;
    if (resp_len)
        *resp_len = recv_buf ? grpc_byte_buffer_length(recv_buf) : 0;

    if (recv_buf)
        grpc_byte_buffer_destroy(recv_buf);
    grpc_byte_buffer_destroy(send_buf);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(channel);
    return (int)status;
}
