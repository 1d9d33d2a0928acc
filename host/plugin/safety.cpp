// Ownership and mode checks on plugins_dir and the plugins in it; the threat is in safety.hpp.
#include "plugin/safety.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace chihaya {
namespace {

std::string user_name(uid_t uid) {
    passwd entry{};
    passwd* found = nullptr;
    char buffer[1024];
    if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found)
        return std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")";
    return "uid " + std::to_string(uid);
}

// The owner and mode rules shared by the directory and the files.
std::string unsafe_owner_or_mode(const std::string& path, const struct stat& st, const char* what) {
    const uid_t self = geteuid();
    if (st.st_uid != 0 && st.st_uid != self)
        return what + (" " + path) + " is owned by " + user_name(st.st_uid) +
               ", not by root or the tracker's user " + user_name(self) +
               "; plugins run with the tracker's privileges (fix: chown root " + path + ")";
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return what + (" " + path) + " is writable by " +
               ((st.st_mode & S_IWOTH) ? "others" : "its group") +
               "; plugins run with the tracker's privileges (fix: chmod go-w " + path + ")";
    return "";
}

}  // namespace

std::string unsafe_plugins_dir(const std::string& dir) {
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0)
        return "plugins_dir " + dir + ": " + std::strerror(errno);
    if (!S_ISDIR(st.st_mode)) return "plugins_dir " + dir + " is not a directory";
    return unsafe_owner_or_mode(dir, st, "plugins_dir");
}

std::string unsafe_plugin_file(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
    if (S_ISLNK(st.st_mode))
        return "not a regular file (a symlink; copy the plugin into plugins_dir instead)";
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    return unsafe_owner_or_mode(path, st, "plugin");
}

}  // namespace chihaya
