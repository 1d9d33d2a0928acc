"""Where the fixtures draw the ports of the servers they start: below the ephemeral range."""
# A port the kernel picked (bind to 0) comes from the ephemeral range, the same range every
# outgoing connection takes its source port from. Between "checked free" and "the server listens
# on it" some connection (redis-cli, a cluster bus link, a tracker's pool) could take it, and the
# server failed to start with "Address already in use". Ports below that range are never handed
# out by the kernel, so only another explicit bind can race us, and each fixture checks the port
# it draws.

import random
import socket

FLOOR = 10000
_rng = random.SystemRandom()


def ephemeral_low():
    """The first port of the kernel's ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def candidates(count=200, span=0):
    """`count` random ports p with p and p + span below the ephemeral range (none when the
    range leaves no room: callers then fall back on the kernel's choice)."""
    top = ephemeral_low() - span
    if top <= FLOOR + 100:
        return []
    return [_rng.randrange(FLOOR, top) for _ in range(count)]


def kernel_port(host="127.0.0.1"):
    """A TCP port the kernel picks (from the ephemeral range): the fallback when the range
    leaves no room below it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()
