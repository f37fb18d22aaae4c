/* The library's version string. */
#include "parley.h"

PARLEY_API const char *parley_version(void)
{
    return "0.1.0";
}
