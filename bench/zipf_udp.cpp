// The Zipf workload's UDP engine: BEP 15 from thousands of loopback addresses, as clients on the
// internet would send it.
//
// Addresses: every IPv4 socket is bound to 0.0.0.0 and left unconnected; each datagram names its
// source address in an IP_PKTINFO control message (ipi_spec_dst), which Linux accepts for any
// address of 127.0.0.0/8 (all of it is local). So a few sockets send from 65,536 addresses at
// batched sendmmsg speed, and the tracker's replies to those addresses come back to the same
// socket. Each IPv4 address always sends from the same socket (address mod sockets), i.e. from
// one source port, as one client does: a tracker that spreads senders over workers or processes
// by address and port (SO_REUSEPORT) sees each client in one place. IPv6 has only ::1 on
// loopback: IPv6 peers share it, differ by port, and go out of any IPv6 socket.
//
// Connection ids, as a client does it: one per source address (the tracker keys them on the
// address), obtained by a connect from that address before its first request, reused by every
// peer at that address until it is 60 s old (BEP 15), then renewed. Requests for an address
// whose connect is in flight wait for it (parked per address). An error reply about the
// connection id makes the address connect again and the request go out once more (counted as
// `reconnects`, not as an error); any other error reply is an error. A connect that gets no answer
// (a tracker's per-address connect limiter drops it) counts as a timeout and is sent again.
//
// Validation, per reply: the action and transaction id (low 16 bits the slot, high 16 its use)
// here, the rest in zipf_validate.cpp.
#include "zipf_udp.hpp"

#include "zipf_validate.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <deque>
#include <memory>
#include <stdexcept>
#include <thread>

namespace loadgen {

namespace {

constexpr unsigned kRecvBatch = 64;
constexpr uint32_t kMaxScrapeHashes = 74;  // BEP 15 scrape of one datagram
constexpr size_t kPacketCap = 16 + 20 * kMaxScrapeHashes;
constexpr size_t kAnnounceSize = 98;

struct ZipfStats : Stats {
    uint64_t scrapes = 0;      // valid scrape replies
    uint64_t connects = 0;     // connect replies (one per address and minute)
    uint64_t reconnects = 0;   // requests resent after an error about the connection id
    uint64_t connect_timeouts = 0;  // of `timeouts`, connects (e.g. dropped by a connect limiter)
    uint64_t warmup_connects = 0;   // before the steady phase's clock (ZipfEngine::warm_up)
    int64_t warmup_us = 0;
    uint64_t unsent = 0;       // drawn but never sent: the phase's time ran out first
    uint64_t vanished = 0;     // peers that left without a stop (steady phase)
    void merge(const ZipfStats& o) {
        Stats::merge(o);
        scrapes += o.scrapes; connects += o.connects; reconnects += o.reconnects;
        connect_timeouts += o.connect_timeouts;
        warmup_connects += o.warmup_connects;
        warmup_us = std::max(warmup_us, o.warmup_us);
        unsent += o.unsent; vanished += o.vanished;
    }
};

void report_zipf(const char* phase, const ZipfStats& s, uint32_t threads, uint64_t planned) {
    double secs = std::max(1e-9, double(s.end_us - s.start_us) / 1e6);
    std::printf("mode=zipf phase=%s announces=%" PRIu64 " seconds=%.2f rate=%.0f p50_us=%" PRIu64
                " p99_us=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64 " late=%" PRIu64
                " peers_per_reply=%.2f self_peers=%" PRIu64 " retries=%" PRIu64 " scrapes=%" PRIu64
                " scrape_rate=%.0f connects=%" PRIu64 " reconnects=%" PRIu64 " connect_timeouts=%" PRIu64 " unsent=%" PRIu64
                " vanished=%" PRIu64 " planned=%" PRIu64 " warmup_connects=%" PRIu64 " warmup_s=%.2f threads=%u\n",
                phase, s.ok, secs, double(s.ok) / secs, s.latency.quantile(0.50),
                s.latency.quantile(0.99), s.errors, s.timeouts, s.late,
                s.ok ? double(s.peers) / double(s.ok) : 0.0, s.self_peers, s.retries, s.scrapes,
                double(s.scrapes) / secs, s.connects, s.reconnects, s.connect_timeouts, s.unsent, s.vanished, planned,
                s.warmup_connects, double(s.warmup_us) / 1e6, threads);
    for (auto& e : s.samples) std::fprintf(stderr, "  %s error: %s\n", phase, e.c_str());
    std::fflush(stdout);
}

// One thread's supply of requests in a phase: a count and a deadline, whichever ends it first.
struct ZipfSource {
    ZipfStream* stream;
    bool prepopulating;
    uint64_t limit;
    int64_t deadline_us;
    uint64_t issued = 0;

    bool more(int64_t now) const { return issued < limit && now < deadline_us; }
    ZipfRequest next() {
        uint64_t i = issued++;
        return prepopulating ? stream->prepopulate(i) : stream->steady();
    }
};

bool mentions_connection_id(const uint8_t* p, size_t n) {
    std::string text(reinterpret_cast<const char*>(p), n);
    for (auto& ch : text) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return text.find("connection id") != std::string::npos || text.find("connection_id") != std::string::npos;
}

class ZipfEngine {
public:
    ZipfEngine(const ZipfRun& run, const ZipfModel& model, uint32_t sockets4, uint32_t sockets6)
        : run_(run), m_(model),
          reply_cap_(std::max<size_t>(20 + 18 * size_t(std::max<uint32_t>(run.numwant, 1)),
                                      8 + 12 * kMaxScrapeHashes) + 64),
          rx_(size_t(kRecvBatch) * reply_cap_), rx_iov_(kRecvBatch), rx_msgs_(kRecvBatch),
          addresses_(size_t(model.config().source_count) + sockets6) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        for (uint32_t i = 0; i < sockets4 + sockets6; ++i) open_socket(i >= sockets4);
        for (unsigned i = 0; i < kRecvBatch; ++i) {
            rx_iov_[i] = {rx_.data() + i * reply_cap_, reply_cap_};
            rx_msgs_[i].msg_hdr = msghdr{};
            rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
            rx_msgs_[i].msg_hdr.msg_iovlen = 1;
        }
        size_t slots = size_t(sockets4 + sockets6) * run.inflight;
        queue_cap_ = std::max<size_t>(256, 4 * slots);
        park_cap_ = std::max<size_t>(256, 4 * slots);
    }
    ~ZipfEngine() {
        for (auto& s : sockets_) close(s->fd);
        close(epoll_);
    }

    // Before the steady phase's clock starts: every address without an id connects, and the
    // renewals are then spread over the next minute, as a population of clients' would be
    // (renewing an id early is always allowed). So a short run measures the steady state, about
    // source_count / 60 connects a second, and not a start-up burst of 65,536. Bounded by
    // `deadline_us`; an address still without an id then connects on its first request.
    void warm_up(ZipfStats& st, int64_t deadline_us) {
        int64_t start = now_us();
        // Each address connects from the socket that sends for it (queue_for).
        std::vector<std::vector<uint32_t>> todo(sockets_.size());
        size_t left = 0;
        auto collect = [&] {
            for (uint32_t a = 0; !v4_.empty() && a < m_.config().source_count; ++a)
                if (addresses_[a].state == Address::None) { todo[v4_[a % v4_.size()]].push_back(a); ++left; }
            for (size_t k = 0; k < sockets_.size(); ++k) {
                uint32_t key = m_.config().source_count + sockets_[k]->ordinal6;
                if (sockets_[k]->v6 && addresses_[key].state == Address::None) { todo[k].push_back(key); ++left; }
            }
        };
        collect();
        std::vector<epoll_event> events(sockets_.size());
        int64_t last_expire = start;
        uint64_t connects0 = st.connects;
        for (int64_t now = start; now < deadline_us; now = now_us()) {
            if (left == 0 && outstanding() == 0) {
                collect();  // those whose connect timed out
                if (left == 0) break;
            }
            if (now - last_expire > 10'000) {
                last_expire = now;
                for (auto& s : sockets_) expire(*s, now, st);
            }
            for (size_t k = 0; k < sockets_.size(); ++k) {
                auto& s = sockets_[k];
                auto& list = todo[k];
                unsigned count = 0;
                for (uint32_t i = 0; i < s->slots.size() && !list.empty(); ++i) {
                    if (s->slots[i].busy) continue;
                    write_connect(*s, count, i, list.back(), now);
                    list.pop_back();
                    --left;
                }
                int n = count ? sendmmsg(s->fd, s->tx_msgs.data(), count, 0) : 0;
                unsigned sent = n > 0 ? unsigned(n) : 0;
                for (unsigned k = 0; k < count; ++k) {
                    Slot& slot = s->slots[s->tx_slot[k]];
                    if (k < sent) { slot.busy = true; ++s->busy; }
                    else { addresses_[slot.address].state = Address::None; list.push_back(slot.address); ++left; }
                }
            }
            int n = epoll_wait(epoll_, events.data(), int(events.size()), 5);
            for (int k = 0; k < n; ++k) receive(*sockets_[events[k].data.u32], st);
        }
        int64_t now = now_us();
        for (uint32_t a = 0; a < addresses_.size(); ++a)
            if (addresses_[a].state == Address::Valid)
                addresses_[a].got_us = now - int64_t(splitmix64(a ^ 0xC0DEull) % uint64_t(kConnectionIdMaxAgeUs));
        st.warmup_connects += st.connects - connects0;
        st.connects = connects0;
        st.warmup_us = std::max(st.warmup_us, now - start);
    }

    void run(ZipfSource& src, ZipfStats& st) {
        std::vector<epoll_event> events(sockets_.size());
        st.start_us = now_us();
        int64_t last_expire = st.start_us;
        for (;;) {
            int64_t now = now_us();
            bool sending = now < src.deadline_us;
            bool work_left = src.more(now) || queued() > 0 || parked_ > 0;
            if (outstanding() == 0 && (!sending || !work_left)) break;
            bool expiring = now - last_expire > 10'000;
            if (expiring) last_expire = now;
            for (auto& s : sockets_) {
                if (expiring) expire(*s, now, st);
                if (sending) fill(*s, src, st, now);
            }
            int n = epoll_wait(epoll_, events.data(), int(events.size()), 5);
            if (n < 0 && errno != EINTR) { std::perror("epoll_wait"); break; }
            for (int k = 0; k < n; ++k) receive(*sockets_[events[k].data.u32], st);
        }
        for (auto& s : sockets_)
            for (auto& slot : s->slots)
                if (slot.busy) { slot.busy = false; ++st.timeouts; --s->busy; }
        // What the deadline left unsent is counted and dropped: the next phase starts clean.
        st.unsent += queued() + parked_;
        ready6_.clear();
        for (auto& s : sockets_) s->ready.clear();
        for (auto& a : addresses_) {
            a.head = a.tail = -1;
            if (a.state == Address::Pending) a.state = Address::None;
        }
        park_.clear();
        free_ = -1;
        parked_ = 0;
        st.end_us = now_us();
    }

private:
    struct Slot {
        bool busy = false;
        bool is_connect = false;
        uint32_t tid = 0;
        int64_t sent_us = 0;
        uint32_t address = 0;  // a connect's
        ZipfRequest req{};
    };
    struct Sock {
        int fd = -1;
        bool v6 = false;
        std::vector<Slot> slots;
        uint32_t busy = 0;
        uint16_t generation = 0;
        std::vector<uint8_t> tx;       // kPacketCap bytes per slot
        std::vector<uint8_t> control;  // one IP_PKTINFO control message per slot (IPv4)
        std::vector<iovec> tx_iov;
        std::vector<mmsghdr> tx_msgs;
        std::vector<uint32_t> tx_slot;
        std::deque<ZipfRequest> ready;  // IPv4: drawn for this socket's addresses, not yet sent
        uint32_t ordinal6 = 0;          // IPv6: which IPv6 socket (its connection id's key)
    };
    // Per source address: its connection id and the requests waiting for one.
    struct Address {
        enum : uint8_t { None, Pending, Valid } state = None;
        uint64_t id = 0;
        int64_t got_us = 0;
        int32_t head = -1, tail = -1;  // parked requests, a FIFO through park_
    };
    struct Parked {
        ZipfRequest req;
        int32_t next = -1;
    };

    static constexpr size_t kControlSize = CMSG_SPACE(sizeof(in_pktinfo));

    void open_socket(bool v6) {
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int rc = -1;
        if (fd >= 0 && v6) {
            sockaddr_in6 any{};
            any.sin6_family = AF_INET6;
            any.sin6_addr = in6addr_loopback;
            rc = bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any);
        } else if (fd >= 0) {
            sockaddr_in any{};
            any.sin_family = AF_INET;
            any.sin_addr.s_addr = htonl(INADDR_ANY);
            rc = bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any);
        }
        if (rc != 0) {
            std::perror("chihaya_loadgen: zipf udp socket");
            std::exit(1);
        }
        int buf = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        if (!v6) {
            // DF on every datagram (all are far below any MTU): the kernel then skips the
            // shared IP-id generator that unconnected sockets otherwise pay per datagram.
            int pmtu = IP_PMTUDISC_DO;
            setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
        }
        auto s = std::make_unique<Sock>();
        s->fd = fd;
        s->v6 = v6;
        size_t n = run_.inflight;
        s->slots.resize(n);
        s->tx.resize(n * kPacketCap);
        s->control.resize(n * kControlSize);
        s->tx_iov.resize(n);
        s->tx_msgs.resize(n);
        s->tx_slot.resize(n);
        if (!v6) v4_.push_back(uint32_t(sockets_.size()));
        else s->ordinal6 = sockets6_++;
        epoll_event ev{EPOLLIN, {.u32 = uint32_t(sockets_.size())}};
        epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
        sockets_.push_back(std::move(s));
    }

    size_t outstanding() const {
        size_t n = 0;
        for (auto& s : sockets_) n += s->busy;
        return n;
    }

    uint32_t next_tid(Sock& s, size_t slot) { return (uint32_t(++s.generation) << 16) | uint32_t(slot); }
    uint8_t* packet(Sock& s, uint32_t slot) { return s.tx.data() + size_t(slot) * kPacketCap; }

    void park(const ZipfRequest& r, uint32_t key) {
        int32_t i;
        if (free_ >= 0) { i = free_; free_ = park_[size_t(i)].next; park_[size_t(i)] = Parked{r, -1}; }
        else { i = int32_t(park_.size()); park_.push_back(Parked{r, -1}); }
        Address& a = addresses_[key];
        if (a.tail >= 0) park_[size_t(a.tail)].next = i; else a.head = i;
        a.tail = i;
        ++parked_;
    }
    // The address has an id now (or its connect failed): its waiting requests go first.
    void unpark(uint32_t address) {
        Address& a = addresses_[address];
        auto& q = queue_for(address);
        // Keep their order at the front of the queue: push_front from the last one.
        std::vector<int32_t> chain;
        for (int32_t i = a.head; i >= 0; i = park_[size_t(i)].next) chain.push_back(i);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            q.push_front(park_[size_t(*it)].req);
            park_[size_t(*it)].next = free_;
            free_ = *it;
            --parked_;
        }
        a.head = a.tail = -1;
    }

    void queue(Sock& s, unsigned& count, uint32_t slot, size_t size, uint32_t address) {
        s.tx_iov[count] = {packet(s, slot), size};
        msghdr& h = s.tx_msgs[count].msg_hdr;
        h = msghdr{};
        h.msg_iov = &s.tx_iov[count];
        h.msg_iovlen = 1;
        if (s.v6) {
            h.msg_name = const_cast<sockaddr_in6*>(&run_.target6);
            h.msg_namelen = sizeof run_.target6;
        } else {
            h.msg_name = const_cast<sockaddr_in*>(&run_.target4);
            h.msg_namelen = sizeof run_.target4;
            uint8_t* c = s.control.data() + size_t(slot) * kControlSize;
            std::memset(c, 0, kControlSize);
            h.msg_control = c;
            h.msg_controllen = kControlSize;
            cmsghdr* cm = CMSG_FIRSTHDR(&h);
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
            in_pktinfo info{};
            info.ipi_spec_dst.s_addr = htonl(m_.config().source_base + address);
            std::memcpy(CMSG_DATA(cm), &info, sizeof info);
        }
        s.tx_slot[count++] = slot;
    }

    // Which socket sends for an address: an IPv4 address always from the same socket (one
    // source port, as one client's), so a tracker spreading senders over workers by address and
    // port (SO_REUSEPORT) sees each client on one worker; IPv6 (::1 only) from any IPv6 socket.
    std::deque<ZipfRequest>& queue_for(uint32_t address) {
        if (address >= m_.config().source_count) return ready6_;
        return sockets_[v4_[address % v4_.size()]]->ready;
    }
    // Whose connection id a request uses: its IPv4 address's, or for IPv6 the sending socket's.
    // All IPv6 peers share ::1, so each IPv6 socket (one source port) is one client at ::1 with
    // an id of its own, as separate clients behind one address would be.
    uint32_t id_key(const Sock& s, const ZipfRequest& r) const {
        return r.v6 ? m_.config().source_count + s.ordinal6 : r.address;
    }

    size_t queued() const {
        size_t n = ready6_.size();
        for (auto& s : sockets_) n += s->ready.size();
        return n;
    }
    size_t longest_queue() const {
        size_t n = ready6_.size();
        for (auto& s : sockets_) n = std::max(n, s->ready.size());
        return n;
    }

    // The next request this socket can send, or false when there is none for now.
    bool take(Sock& s, ZipfSource& src, int64_t now, ZipfRequest& out) {
        auto& mine = s.v6 ? ready6_ : s.ready;
        for (int pulls = 0; pulls < 64; ++pulls) {
            if (!mine.empty()) {
                out = mine.front();
                mine.pop_front();
                return true;
            }
            // The other sockets' queues are bounded, so a slow socket (or family) holds back the
            // others and the sent mix stays the workload's mix.
            if (!src.more(now) || longest_queue() >= queue_cap_ || parked_ >= park_cap_) return false;
            ZipfRequest r = src.next();
            auto& q = queue_for(r.address);
            if (&q != &mine) { q.push_back(r); continue; }
            out = r;
            return true;
        }
        return false;
    }

    void fill(Sock& s, ZipfSource& src, ZipfStats& st, int64_t now) {
        unsigned count = 0;
        for (uint32_t i = 0; i < s.slots.size(); ++i) {
            if (s.slots[i].busy) continue;
            ZipfRequest r;
            bool placed = false;
            while (!placed && take(s, src, now, r)) {
                uint32_t key = id_key(s, r);
                Address& a = addresses_[key];
                if (a.state == Address::Valid && now - a.got_us <= kConnectionIdMaxAgeUs) {
                    write_request(s, i, r, key, a.id, now);
                    queue(s, count, i, request_size(r), r.address);
                    placed = true;
                } else if (a.state == Address::Pending) {
                    park(r, key);
                } else {
                    // No id yet, or a stale one: connect from this address; the request waits.
                    write_connect(s, count, i, key, now);
                    park(r, key);
                    placed = true;
                }
            }
            if (!placed) break;
        }
        unsigned sent = 0;
        while (sent < count) {
            int n = sendmmsg(s.fd, s.tx_msgs.data() + sent, count - sent, 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
                    st.error(std::string("udp send: ") + std::strerror(errno));
                break;  // buffer full: the rest goes out on the next round
            }
            sent += unsigned(n);
        }
        for (unsigned k = 0; k < count; ++k) {
            Slot& slot = s.slots[s.tx_slot[k]];
            if (k < sent) {
                slot.busy = true;
                ++s.busy;
                if (!slot.is_connect) ++st.sent;
            } else if (slot.is_connect) {
                addresses_[slot.address].state = Address::None;
                unpark(slot.address);
            } else {
                queue_for(slot.req.address).push_front(slot.req);
            }
        }
    }

    void write_connect(Sock& s, unsigned& count, uint32_t i, uint32_t address, int64_t now) {
        uint8_t* p = packet(s, i);
        put64(p, kProtocolId);
        put32(p + 8, 0);
        put32(p + 12, next_tid(s, i));
        s.slots[i] = Slot{false, true, get32(p + 12), now, address, {}};
        addresses_[address].state = Address::Pending;
        queue(s, count, i, 16, address);
    }

    size_t request_size(const ZipfRequest& r) const {
        return r.kind == ZipfRequest::Kind::Scrape ? 16 + 20 * size_t(m_.config().scrape_hashes) : kAnnounceSize;
    }

    void write_request(Sock& s, uint32_t i, const ZipfRequest& r, uint32_t key, uint64_t id, int64_t now) {
        uint8_t* p = packet(s, i);
        put64(p, id);
        put32(p + 12, next_tid(s, i));
        if (r.kind == ZipfRequest::Kind::Scrape) {
            put32(p + 8, 2);
            for (uint32_t k = 0; k < m_.config().scrape_hashes; ++k)
                m_.info_hash(m_.scrape_torrent(r, k), p + 16 + 20 * k);
        } else {
            put32(p + 8, 1);
            m_.info_hash(r.torrent, p + 16);
            m_.peer_id(r.torrent, r.peer, p + 36);
            put64(p + 56, r.left == 0 ? ZipfModel::kLeft : 0);  // downloaded
            put64(p + 64, r.left);
            put64(p + 72, 0);                                   // uploaded
            put32(p + 80, uint32_t(r.event));
            put32(p + 84, 0);                                   // ip: the sender's
            put32(p + 88, m_.key(r.torrent, r.peer));
            put32(p + 92, run_.numwant);
            p[96] = uint8_t(r.port >> 8);
            p[97] = uint8_t(r.port);
        }
        s.slots[i] = Slot{false, false, get32(p + 12), now, key, r};
    }

    void expire(Sock& s, int64_t now, ZipfStats& st) {
        int64_t limit = int64_t(run_.timeout_ms) * 1000;
        for (auto& slot : s.slots)
            if (slot.busy && now - slot.sent_us > limit) {
                slot.busy = false;
                --s.busy;
                ++st.timeouts;
                if (slot.is_connect) {  // dropped (a connect limiter?): the address tries again
                    ++st.connect_timeouts;
                    addresses_[slot.address].state = Address::None;
                    unpark(slot.address);
                }
            }
    }

    void receive(Sock& s, ZipfStats& st) {
        for (int round = 0; round < 4; ++round) {
            int n = recvmmsg(s.fd, rx_msgs_.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
                st.error(std::string("udp recv: ") + std::strerror(errno));
                return;
            }
            int64_t now = now_us();
            for (int k = 0; k < n; ++k) {
                if (rx_msgs_[k].msg_hdr.msg_flags & MSG_TRUNC) {
                    st.error("udp: reply larger than numwant allows");
                    continue;
                }
                one_reply(s, rx_.data() + size_t(k) * reply_cap_, rx_msgs_[k].msg_len, now, st);
            }
            if (unsigned(n) < kRecvBatch) return;
        }
    }

    void one_reply(Sock& s, const uint8_t* buf, size_t n, int64_t now, ZipfStats& st) {
        if (n < 8) { st.error("udp: reply of " + std::to_string(n) + " bytes"); return; }
        uint32_t action = get32(buf), tid = get32(buf + 4);
        size_t slot_index = tid & 0xFFFF;
        if (slot_index >= s.slots.size() || !s.slots[slot_index].busy || s.slots[slot_index].tid != tid) {
            ++st.late;
            return;
        }
        Slot& slot = s.slots[slot_index];
        slot.busy = false;
        --s.busy;
        if (slot.is_connect) {
            Address& a = addresses_[slot.address];
            if (action != 0 || n != 16) {
                st.error("udp: bad connect reply: action " + std::to_string(action) + ", " + std::to_string(n) + " bytes");
                a.state = Address::None;
            } else {
                a.state = Address::Valid;
                a.id = get64(buf + 8);
                a.got_us = now;
                ++st.connects;
            }
            unpark(slot.address);
            return;
        }
        if (action == 3) {
            if (mentions_connection_id(buf + 8, n - 8) && slot.req.retries == 0) {
                // What a client does: connect again from this address and resend.
                Address& a = addresses_[slot.address];
                if (a.state == Address::Valid && a.got_us <= slot.sent_us) a.state = Address::None;
                ZipfRequest again = slot.req;
                again.retries = 1;
                queue_for(again.address).push_front(again);
                ++st.reconnects;
                return;
            }
            st.error("udp: tracker error: " + std::string(reinterpret_cast<const char*>(buf + 8), n - 8));
            return;
        }
        const ZipfRequest& r = slot.req;
        ReplyCheck check;
        if (r.kind == ZipfRequest::Kind::Scrape) check = check_scrape_reply(m_, r, action, buf, n);
        else check = check_announce_reply(m_, r, run_.numwant, s.v6, action, buf, n);
        if (!check.error.empty()) {
            st.error("udp: " + check.error);
            return;
        }
        (r.kind == ZipfRequest::Kind::Scrape ? st.scrapes : st.ok) += 1;
        st.peers += check.peers;
        st.self_peers += check.self;
        st.latency.add(now - slot.sent_us);
    }

    const ZipfRun& run_;
    const ZipfModel& m_;
    size_t reply_cap_;
    int epoll_ = -1;
    std::vector<uint8_t> rx_;
    std::vector<iovec> rx_iov_;
    std::vector<mmsghdr> rx_msgs_;
    std::vector<std::unique_ptr<Sock>> sockets_;
    std::vector<Address> addresses_;  // source_count IPv4 addresses, then ::1 once per IPv6 socket
    std::vector<Parked> park_;
    int32_t free_ = -1;
    size_t parked_ = 0;
    std::vector<uint32_t> v4_;           // indices of the IPv4 sockets in sockets_
    uint32_t sockets6_ = 0;
    std::deque<ZipfRequest> ready6_;     // drawn, not yet sent: IPv6 (IPv4: each socket's `ready`)
    size_t queue_cap_ = 256, park_cap_ = 256;
};

}  // namespace

int run_zipf(const ZipfRun& run) {
    const ZipfConfig& c = run.workload;
    int64_t t0 = now_us();
    std::unique_ptr<ZipfModel> model;
    try {
        model = std::make_unique<ZipfModel>(c);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "chihaya_loadgen: %s\n", e.what());
        return 2;
    }
    std::vector<uint8_t> state = ZipfStream::initial_state(*model);
    std::printf("mode=zipf phase=model torrents=%u peers=%" PRIu64 " largest=%u v6_peers=%" PRIu64
                " addresses=%u exponent=%.3f scrape_share=%.3f scrape_hashes=%u build_ms=%" PRId64 "\n",
                c.torrents, model->total_peers(), model->largest(), model->v6_total(), c.source_count,
                c.exponent, c.scrape_share, c.scrape_hashes, (now_us() - t0) / 1000);
    std::fflush(stdout);

    // Sockets per thread: the IPv6 share of them (at least one when there are IPv6 peers).
    uint32_t threads = run.threads;
    uint32_t per = std::max<uint32_t>(run.sockets / threads, model->v6_total() ? 2 : 1);
    uint32_t s6 = model->v6_total() ? std::max<uint32_t>(1, uint32_t(per * c.ipv6_share + 0.5)) : 0;
    if (s6 >= per) s6 = per - 1;
    std::vector<std::unique_ptr<ZipfEngine>> engines;
    std::vector<ZipfStream> streams;
    for (uint32_t k = 0; k < threads; ++k) {
        engines.push_back(std::make_unique<ZipfEngine>(run, *model, per - s6, s6));
        streams.emplace_back(*model, state, k, threads);
    }

    ZipfStats pre, steady;
    auto phase = [&](bool prepopulating, double seconds, ZipfStats& out) {
        int64_t deadline = now_us() + int64_t(seconds * 1e6);
        std::vector<ZipfSource> sources;
        std::vector<ZipfStats> stats(threads);
        uint64_t planned = 0;
        for (uint32_t k = 0; k < threads; ++k) {
            uint64_t limit = prepopulating ? streams[k].prepopulate_count()
                                           : run.max_requests / threads + (k < run.max_requests % threads ? 1 : 0);
            planned += limit;
            sources.push_back(ZipfSource{&streams[k], prepopulating, limit, deadline, 0});
        }
        uint64_t vanished0 = 0;
        for (auto& s : streams) vanished0 += s.vanished();
        std::vector<std::thread> pool;
        auto one = [&](uint32_t k) {
            // The steady phase's clock starts once the addresses have ids (bounded: 30 s).
            if (!prepopulating) engines[k]->warm_up(stats[k], now_us() + 30'000'000);
            sources[k].deadline_us = now_us() + int64_t(seconds * 1e6);
            engines[k]->run(sources[k], stats[k]);
        };
        for (uint32_t k = 1; k < threads; ++k) pool.emplace_back([&, k] { one(k); });
        one(0);
        for (auto& t : pool) t.join();
        for (auto& s : stats) out.merge(s);
        for (auto& s : streams) out.vanished += s.vanished();
        out.vanished -= vanished0;
        report_zipf(prepopulating ? "prepopulate" : "steady", out, threads, prepopulating ? planned : 0);
    };
    if (run.prepopulate) phase(true, run.prepopulate_s, pre);
    if (run.steady) phase(false, run.duration_s, steady);
    bool clean = pre.errors + pre.timeouts + steady.errors + steady.timeouts == 0;
    // Phase 1 must announce every peer: one it could not send in time is a failure too.
    if (run.prepopulate && pre.unsent + pre.timeouts > 0) clean = false;
    return clean ? 0 : 1;
}

}  // namespace loadgen
