// Least privilege: after the sockets are bound and the plugins loaded, become [process] user.
#pragma once

#include "config/config.hpp"

#include <string>
#include <vector>

namespace chihaya {

// Resolves the user and group (before any chroot: /etc/passwd is outside it), chroots when
// configured, then drops supplementary groups, gid and uid, and checks that root cannot be
// regained. Throws std::runtime_error naming what failed. With no user configured it changes
// nothing, and warns when the process is root. `hand_over`: directories the process keeps
// writing after the drop (private mode's spool, made at start-up as root), given with their
// contents to the user first.
void drop_privileges(const ProcessConfig& config, const std::vector<std::string>& hand_over = {});

}  // namespace chihaya
