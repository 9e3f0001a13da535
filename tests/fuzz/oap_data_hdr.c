/*
 * oap_data_hdr.c — libFuzzer target: DATA payload split/parse and the obj
 * address helper on arbitrary payload bytes.
 */
#include <stdlib.h>

#include "oap/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oap_data d;
    struct cas_addr a;
    json_t *hdr;
    int rc = oap_data_parse(&d, data, size, &hdr);

    if (rc == 0) {
        if (!json_is_object(hdr) || d.hdr_len > OAP_DATA_HDR_MAX_BYTES ||
            2 + d.hdr_len + d.body_len != size)
            abort();
        (void)oap_data_obj(hdr, &a);
        json_decref(hdr);
    } else if (rc != OAP_E_BAD_DATA_HDR || hdr != NULL) {
        abort();
    }
    return 0;
}
