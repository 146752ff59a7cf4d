/* Lab-only shim: PostgreSQL refuses to run as uid 0, but on machines without
 * CAP_SYS_RESOURCE CRIU can only dump processes whose uid is its own (0).
 * Preloaded, this makes getuid()/geteuid() report STACKLIFT_FAKE_UID (the
 * postgres user), which owns the data directory.  Real hosts do not need it. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>

static uid_t reported_uid(void)
{
    const char *s = getenv("STACKLIFT_FAKE_UID");
    return s ? (uid_t)strtoul(s, NULL, 10) : 0;
}

uid_t getuid(void) { return reported_uid(); }
uid_t geteuid(void) { return reported_uid(); }
