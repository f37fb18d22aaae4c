#include "common/error.h"

#include <uv.h>

const char *pl_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define PL__ERR_MSG(name, val, msg)                                                                \
    case PL_##name:                                                                                \
        return msg;
        PL_ERRNO_MAP(PL__ERR_MSG)
#undef PL__ERR_MSG
    default:
        return uv_strerror(err);
    }
}

const char *pl_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define PL__ERR_NAME(name, val, msg)                                                               \
    case PL_##name:                                                                                \
        return "PL_" #name;
        PL_ERRNO_MAP(PL__ERR_NAME)
#undef PL__ERR_NAME
    default:
        return uv_err_name(err);
    }
}
