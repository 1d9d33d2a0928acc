// Probing a plugin in a child process: which drivers it registers, learned without loading it
// into the tracker.
//
// Why: a tracker needs one cache and one storage driver, but plugins_dir usually holds every
// driver the package ships. Loading a plugin maps its libraries for good: the PostgreSQL driver
// brings libpq, OpenSSL, Kerberos, LDAP and GnuTLS, and OpenSSL and p11-kit pin themselves, so
// unloading the plugin later does not unmap them (2.1 MB of an open tracker's resident memory,
// and code it never runs). And a plugin whose static constructors crash or never return would take
// the tracker down with it. A child that loads the plugin, reports its descriptor through a pipe
// and exits costs a fork per file at start-up and isolates both.
#pragma once

#include <chihaya/abi.h>

#include <chrono>
#include <string>
#include <vector>

namespace chihaya {

struct ProbedDriver {
    chihaya_driver_kind kind;
    std::string name;
};

struct ProbeResult {
    enum class State {
        Loaded,      // the child loaded it and passed the handshake: name, version, drivers are set
        Refused,     // the child could not load it, crashed, exited or ran out of time: see why
        Unavailable  // no child could be made (fork or pipe failed): the caller loads it in-process
    };
    State state = State::Unavailable;
    std::string why;
    std::string name, version;
    std::vector<ProbedDriver> drivers;
};

// How long a child may take to load one plugin before it is killed and the plugin refused.
inline constexpr std::chrono::milliseconds kProbeTimeout{20000};

// Loads `path` in a forked child with load_plugin (loader.hpp) and reads back what it found.
// Call it before the process starts any thread: the child runs the dynamic loader and malloc,
// which is only safe after fork() when no other thread could have held their locks.
ProbeResult probe_plugin(const std::string& path, const chihaya_host_api* host,
                         std::chrono::milliseconds timeout = kProbeTimeout);

}  // namespace chihaya
