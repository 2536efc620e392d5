/* qvet bench's case filter (bench_filter.h says the rule). */
#include "bench_filter.h"

#include <regex.h>
#include <string.h>

int qv_bench_keep(const char *name, const char *filter)
{
    if (!filter || !*filter) return 1;
    regex_t re;
    if (regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) return strstr(name, filter) != NULL;
    const int hit = regexec(&re, name, 0, NULL, 0) == 0;
    regfree(&re);
    return hit;
}
