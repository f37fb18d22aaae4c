/* Error codes shared by every Parley module.
 *
 * Functions return 0 on success or one of these negative codes; pl_strerror() names them.
 * System errors from libuv keep their own (negative errno) values, which pl_strerror()
 * forwards to uv_strerror(), so one int carries either kind. */
#ifndef PL_ERROR_H
#define PL_ERROR_H

#define PL_OK 0
/* Our codes live far below errno values so they never collide with UV_E*. */
#define PL_ERRNO_MAP(X)                                                                            \
    X(ENOMEM, -30001, "out of memory")                                                             \
    X(EINVAL, -30002, "invalid argument")                                                          \
    X(ENOTFOUND, -30003, "not found")                                                              \
    X(EFULL, -30004, "room is full")                                                               \
    X(EEXIST, -30005, "already exists")                                                            \
    X(EFORBIDDEN, -30006, "forbidden")                                                             \
    X(EUNAVAIL, -30007, "store unavailable")                                                       \
    X(ELIMIT, -30008, "limit reached")                                                             \
    X(EAUTH, -30009, "authentication failed")                                                      \
    X(EEXPIRED, -30010, "token expired")                                                           \
    X(ECONFIG, -30011, "configuration error")                                                      \
    X(ECLOSED, -30012, "closed")                                                                   \
    X(ECONFLICT, -30013, "conflict")

enum {
#define PL__ERR_ENUM(name, val, msg) PL_##name = (val),
    PL_ERRNO_MAP(PL__ERR_ENUM)
#undef PL__ERR_ENUM
};

/* A static, human-readable description of err (ours or libuv's). Never NULL. */
const char *pl_strerror(int err);
/* The symbolic name ("PL_ENOTFOUND", "ECONNRESET"). Never NULL. */
const char *pl_err_name(int err);

#endif
