// Least privilege: become [process] user/group (and chroot) once nothing privileged is left to do.
//
// Threat: the tracker parses bytes from anyone. Whatever a bug there gives an attacker, it should
// be an unprivileged user's process, not root's. Binding a port below 1024 and reading the
// plugins are the only things root is needed for, and both are done when this runs.
#include "process/privileges.hpp"

#include "log/log.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace chihaya {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("process: " + what + ": " + std::strerror(errno));
}

struct Identity {
    uid_t uid;
    gid_t gid;
};

Identity resolve(const ProcessConfig& config) {
    std::vector<char> buf(16384);
    passwd pw{}, *found_user = nullptr;
    errno = 0;
    if (::getpwnam_r(config.user.c_str(), &pw, buf.data(), buf.size(), &found_user) != 0 || !found_user) {
        if (errno == 0) errno = ENOENT;
        fail("user \"" + config.user + "\" not found");
    }
    Identity id{pw.pw_uid, pw.pw_gid};
    if (!config.group.empty()) {
        group gr{}, *found_group = nullptr;
        errno = 0;
        if (::getgrnam_r(config.group.c_str(), &gr, buf.data(), buf.size(), &found_group) != 0 || !found_group) {
            if (errno == 0) errno = ENOENT;
            fail("group \"" + config.group + "\" not found");
        }
        id.gid = gr.gr_gid;
    }
    return id;
}

}  // namespace

void drop_privileges(const ProcessConfig& config, const std::vector<std::string>& hand_over) {
    if (config.user.empty()) {
        if (::geteuid() == 0)
            log::warning("process",
                         "RUNNING AS ROOT: a bug in request parsing would hand an attacker the machine; "
                         "set [process] user (e.g. \"nobody\" or a dedicated \"chihaya\" user)");
        return;
    }
    const Identity id = resolve(config);
    if (::geteuid() != 0) {
        if (::geteuid() == id.uid && ::getegid() == id.gid && config.chroot.empty()) return;  // already
        errno = EPERM;
        fail("cannot become user \"" + config.user + "\" (or chroot) without starting as root");
    }
    if (!config.chroot.empty()) {
        if (::chdir(config.chroot.c_str()) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0)
            fail("chroot to " + config.chroot);
    }
    for (const std::string& dir : hand_over) {
        std::error_code error;
        if (::lchown(dir.c_str(), id.uid, id.gid) != 0) fail("chown " + dir);
        for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error))
            if (::lchown(entry.path().c_str(), id.uid, id.gid) != 0) fail("chown " + entry.path().string());
        if (error) fail("chown under " + dir + ": " + error.message());
    }
    // Groups first: once the uid is dropped, changing groups is no longer allowed.
    if (::setgroups(1, &id.gid) != 0) fail("setgroups");
    if (::setgid(id.gid) != 0) fail("setgid");
    if (::setuid(id.uid) != 0) fail("setuid");  // glibc applies it to every thread of the process
    if (id.uid != 0 && ::setuid(0) == 0) {
        errno = EPERM;
        fail("root could be regained after dropping privileges");
    }
    log::info("process", "running as user " + config.user + " (uid " + std::to_string(id.uid) + ", gid " +
                             std::to_string(id.gid) + ")" +
                             (config.chroot.empty() ? std::string() : ", confined to " + config.chroot));
}

}  // namespace chihaya
