// LD_PRELOAD probe for test_lifecycle.py: at every bind() of an IPv4/IPv6 socket, writes to
// stderr whether SIGTERM and SIGINT would already reach the tracker's handler (caught or
// blocked in the binding thread) or still kill it (default action). It only observes: the real
// bind runs unchanged.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace {

bool handled(int signal) {
    struct sigaction action;
    sigset_t blocked;
    if (::sigaction(signal, nullptr, &action) != 0) return false;
    if (::pthread_sigmask(SIG_BLOCK, nullptr, &blocked) != 0) return false;
    return action.sa_handler != SIG_DFL || sigismember(&blocked, signal) == 1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int bind(int fd, const sockaddr* address,
                                                           socklen_t length) {
    using Bind = int (*)(int, const sockaddr*, socklen_t);
    static Bind real = reinterpret_cast<Bind>(::dlsym(RTLD_NEXT, "bind"));
    if (address && (address->sa_family == AF_INET || address->sa_family == AF_INET6)) {
        const char* line = handled(SIGTERM) && handled(SIGINT)
                               ? "bind-probe: bind with SIGTERM and SIGINT handled\n"
                               : "bind-probe: bind while SIGTERM or SIGINT would kill the process\n";
        (void)!::write(2, line, std::strlen(line));
    }
    return real(fd, address, length);
}
