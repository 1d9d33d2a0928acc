// Who may have written the code the tracker runs: the checks on plugins_dir and each *.so.
//
// THREAT: a plugin runs inside the tracker with the tracker's privileges (its sockets, its
// config with the Redis password and the storage's connection string, its user's files). Whoever
// can write a *.so in plugins_dir, or write the directory itself (add, rename or replace a file),
// can run code as the tracker. So the loader opens nothing that anyone but root or the tracker's
// own user could have changed:
//   - plugins_dir must be a directory owned by root or by the effective user, and not writable by
//     group or others (a sticky, world-writable /tmp is refused too: others may add files);
//   - each *.so must be a regular file directly in it (no symlink, no subdirectory: both could
//     point anywhere), owned by root or the effective user, and not writable by group or others.
// Parents of plugins_dir are not checked (a default install under /usr/local is root-owned; a
// packager who puts plugins_dir below a writable directory has bigger problems). The check and the
// dlopen that follows are two steps; that is safe because, once the directory passes, only the
// owner and root can swap the file between them.
#pragma once

#include <string>

namespace chihaya {

// "" when `dir` may be scanned; otherwise why not, naming the path and the fix.
std::string unsafe_plugins_dir(const std::string& dir);

// "" when the directory entry `path` may be opened as a plugin (see above); otherwise why not,
// naming the path and the fix. Does not follow a symlink.
std::string unsafe_plugin_file(const std::string& path);

}  // namespace chihaya
