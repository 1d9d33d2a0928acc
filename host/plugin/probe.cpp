// probe_plugin: fork, load in the child, report through a pipe, judge how the child ended.
#include "plugin/probe.hpp"

#include "log/log.hpp"
#include "plugin/loader.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

namespace chihaya {
namespace {

// The report is lines of tab-separated fields: "L name version", then "D kind name" per driver;
// or "R why". Names passed the handshake ([a-z0-9_-]); the free texts lose tabs and newlines.
std::string field(std::string text) {
    for (char& c : text)
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return text;
}

// The exit status of a child that loaded the plugin but could not hand its report over (out of
// memory, a broken pipe): not the plugin's fault, and told apart from a plugin calling exit().
constexpr int kReportFailed = 125;

std::string report(const LoadedPlugin* plugin, const std::string& why) {
    if (!plugin) return "R\t" + field(why) + "\n";
    const ProbeResult seen = probe_result_of(*plugin);
    std::string out = "L\t" + field(seen.name) + "\t" + field(seen.version) + "\n";
    for (const ProbedDriver& d : seen.drivers) out += "D\t" + std::to_string(int(d.kind)) + "\t" + d.name + "\n";
    return out;
}

[[noreturn]] void child(int fd, const std::string& path, const chihaya_host_api* host) {
    // A crash ends the child with its signal for the parent to name, rather than running a
    // handler inherited from the parent (Asio's, a test framework's). A stop request (Ctrl-C to
    // the process group, systemd's SIGTERM to the cgroup) is the parent's to handle: the child
    // ignores it and is bounded by the parent's timeout anyway.
    for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Only errors: whatever the plugin or the loader log at info level is logged again when the
    // tracker loads the plugin for real.
    log::set_level(log::Level::Error);
    int code = 0;
    try {
        std::string why;
        // Never unloaded: the plugin's (and its libraries') static destructors are not part of
        // loading it, and _exit below runs none of them.
        const LoadedPlugin* plugin = load_plugin(path, host, why).release();
        const std::string text = report(plugin, why);
        for (size_t done = 0; done < text.size();) {
            ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) { code = kReportFailed; break; }
            done += size_t(n);
        }
    } catch (...) {
        code = kReportFailed;
    }
    // _exit: no atexit handlers or static destructors of the parent's copy run here, and no
    // stdio buffer is flushed twice.
    ::_exit(code);
}

ProbeResult parse(const std::string& text) {
    ProbeResult result;
    result.state = ProbeResult::State::Refused;
    std::istringstream in(text);
    std::string line;
    bool complete = false;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        for (size_t start = 0;;) {
            size_t tab = line.find('\t', start);
            f.push_back(line.substr(start, tab == std::string::npos ? tab : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        if (f[0] == "R" && f.size() == 2) {
            result.why = f[1];
            return result;
        }
        if (f[0] == "L" && f.size() == 3) {
            result.name = f[1];
            result.version = f[2];
            complete = true;
        } else if (f[0] == "D" && f.size() == 3 && complete) {
            result.drivers.push_back({static_cast<chihaya_driver_kind>(std::atoi(f[1].c_str())), f[2]});
        } else {
            complete = false;
            break;
        }
    }
    if (!complete) {
        result.why = "the loading process gave no readable answer";
        return result;
    }
    result.state = ProbeResult::State::Loaded;
    return result;
}

std::string ended(int status) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == kReportFailed)
        return "the process that loaded it could not report back (out of memory?)";
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        return "crashed while loading (signal " + std::to_string(sig) + ", " + ::strsignal(sig) +
               "): a static constructor or the entry function of the plugin or of a library it needs";
    }
    return "exited with status " + std::to_string(WEXITSTATUS(status)) +
           " while loading: a static constructor or the entry function called exit()";
}

}  // namespace

ProbeResult probe_plugin(const std::string& path, const chihaya_host_api* host,
                         std::chrono::milliseconds timeout) {
    ProbeResult result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        result.why = std::string("pipe: ") + std::strerror(errno);
        return result;
    }
    // Whatever the parent has buffered would otherwise be written by both processes.
    std::cout.flush();
    std::fflush(nullptr);
    // No signal is delivered between fork and the child's own dispositions: the parent's Asio
    // handler would run in the child and write to the self-pipe both share.
    sigset_t all, before;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, &before);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        child(fds[1], path, host);
    }
    const int fork_error = errno;
    ::sigprocmask(SIG_SETMASK, &before, nullptr);
    if (pid < 0) {
        result.why = std::string("fork: ") + std::strerror(fork_error);
        ::close(fds[0]);
        ::close(fds[1]);
        return result;
    }
    ::close(fds[1]);

    // The report, until end of file; then the child's exit. Both within the deadline: a child that
    // closes the pipe and hangs, or never writes, is killed when it passes.
    std::string text;
    bool timed_out = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto left_ms = [&deadline] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    };
    for (;;) {
        const auto left = left_ms();
        if (left <= 0) { timed_out = true; break; }
        pollfd p{fds[0], POLLIN, 0};
        const int ready = ::poll(&p, 1, int(left));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) { timed_out = true; break; }  // past the deadline, or poll failed
        char buffer[4096];
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // end of file: the child is done, or has closed its end
        text.append(buffer, size_t(n));
    }
    ::close(fds[0]);
    int status = 0;
    for (pid_t done = 0; !timed_out;) {
        done = ::waitpid(pid, &status, WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) { timed_out = true; break; }
        if (left_ms() <= 0) { timed_out = true; break; }
        ::usleep(1000);
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        result.state = ProbeResult::State::Refused;
        const auto ms = timeout.count();
        result.why = "did not finish loading within " +
                     (ms % 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s") +
                     ": a static constructor or the entry function that never returns?";
        return result;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        result.state = ProbeResult::State::Refused;
        result.why = ended(status);
        return result;
    }
    return parse(text);
}

}  // namespace chihaya
