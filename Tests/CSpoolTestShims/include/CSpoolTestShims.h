// C calls the tests need that Swift's Glibc module does not export.
#ifndef CSPOOLTESTSHIMS_H
#define CSPOOLTESTSHIMS_H
#include <stddef.h>

/// Bytes malloc has handed out and not yet been given back, over every arena (mallinfo2().uordblks), after
/// returning free memory to the system (malloc_trim).
size_t spool_test_heap_in_use(void);

#endif
