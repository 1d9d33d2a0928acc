// Memory the host leaves to a driver for good, and how LeakSanitizer is told it is no leak.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CHIHAYA_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHIHAYA_LSAN 1
#endif
#endif
#ifdef CHIHAYA_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace chihaya {

// A call its driver still holds past its deadline (an HTTP session) or at shutdown (a UDP
// worker's slots) keeps the memory the driver may still write into allocated until its done
// comes, and for good when none comes: freeing it would let a late write land in reused heap.
// That leak is the design (bounded by the connections and slots a driver can hold), so in ASan
// builds the object `p` points into, and what it reaches, are not reported at exit.
inline void kept_for_driver(const void* p) {
#ifdef CHIHAYA_LSAN
    __lsan_ignore_object(p);
#else
    (void)p;
#endif
}

}  // namespace chihaya
