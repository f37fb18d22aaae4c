/* A minimal unit-test harness: CHECK records a failure and goes on, REQUIRE stops the test
 * case. Each test binary ends with TEST_MAIN() which prints "N passed, N failed" and exits
 * non-zero when anything failed. */
#ifndef PL_TEST_H
#define PL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pl_test_failed_checks;
static int pl_test_cases_passed;
static int pl_test_cases_failed;
static int pl_test_case_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            pl_test_failed_checks++;                                                               \
            pl_test_case_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);             \
            pl_test_failed_checks++;                                                               \
            pl_test_case_failed = 1;                                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long pl__a = (long long)(a), pl__b = (long long)(b);                                  \
        if (pl__a != pl__b) {                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, pl__a, pl__b);                                                         \
            pl_test_failed_checks++;                                                               \
            pl_test_case_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *pl__a = (a), *pl__b = (b);                                                     \
        if (!pl__a || !pl__b || strcmp(pl__a, pl__b) != 0) {                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__,        \
                    __LINE__, #a, #b, pl__a ? pl__a : "(null)", pl__b ? pl__b : "(null)");         \
            pl_test_failed_checks++;                                                               \
            pl_test_case_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        pl_test_case_failed = 0;                                                                   \
        fn();                                                                                      \
        if (pl_test_case_failed) {                                                                 \
            pl_test_cases_failed++;                                                                \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            pl_test_cases_passed++;                                                                \
            fprintf(stderr, "ok   %s\n", #fn);                                                     \
        }                                                                                          \
    } while (0)

#define TEST_MAIN()                                                                                \
    do {                                                                                           \
        printf("%d passed, %d failed\n", pl_test_cases_passed, pl_test_cases_failed);              \
        return pl_test_cases_failed ? 1 : 0;                                                       \
    } while (0)

#endif
