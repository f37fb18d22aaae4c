/* churn: placeholder until the scenario lands (bench issue). */
#include <stdio.h>

#include "bench.h"

static int start(void)
{
    fprintf(stderr, "parley-bench: scenario 'churn' is not available yet\n");
    return -1;
}

static void stop(void)
{
}

const pb_scenario_t pb_scenario_churn = {
    .name = "churn", .unit = "request", .start = start, .stop = stop};
