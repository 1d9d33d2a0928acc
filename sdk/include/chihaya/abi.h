/* chihaya/abi.h: the C contract between the chihaya host and its driver plugins.
 *
 * This header is the whole plugin boundary. Everything that crosses it is a C type:
 * fixed-width integers, {pointer, length} strings, plain structs, function pointers and
 * opaque handles. No C++ standard-library type and no exception ever crosses it, so a driver
 * built with clang and libc++ loads into a host built with g++ and libstdc++. No enum type
 * appears in a struct or a signature either (an enum's size depends on the compiler and on
 * -fshort-enums): the named constants below are plain integers of the typedef'd width.
 *
 * VERSIONING (sdk/CHANGELOG.md records every version)
 *   CHIHAYA_ABI_MAJOR changes when anything existing changes meaning or layout; the host refuses
 *   a plugin of another major, naming both versions. CHIHAYA_ABI_MINOR grows when members are
 *   appended to the end of a struct or function table; nothing is removed or reordered within a
 *   major. Every struct that may grow starts with `struct_size`, written by whoever fills the
 *   struct (sizeof in the writer's build), and:
 *   - a reader uses a member only if `struct_size` covers it (CHIHAYA_HAS_MEMBER); the host reads
 *     a plugin's smaller (older) struct as if the missing members were zero/NULL, and ignores the
 *     extra members of a larger (newer) one;
 *   - an array of such structs is walked with the writer's stride, `array[0].struct_size`
 *     (CHIHAYA_AT), never with the reader's sizeof.
 *   Each struct has a smallest size, the one it had in the major's first release (2.0); a struct
 *   smaller than that is refused.
 *   Newer plugin, older host: a plugin built against minor M loads into a host of minor N < M as
 *   long as it does not need what N lacks. A plugin states what it needs in `min_host_minor`
 *   (C++ layer: #define CHIHAYA_MIN_HOST_MINOR before including chihaya/driver.hpp); the host
 *   refuses it, naming both versions, when its own minor is lower. Members the host lacks are
 *   simply never called. A plugin that calls an appended member of chihaya_host_api checks it
 *   with CHIHAYA_HAS_MEMBER first.
 *
 * LOADING
 *   A plugin is a shared object exporting exactly one symbol, CHIHAYA_PLUGIN_ENTRY_SYMBOL. The host
 *   opens it RTLD_NOW | RTLD_LOCAL, calls the entry once on the main thread, and checks magic,
 *   ABI major and struct sizes of the returned descriptor before it touches anything else. The
 *   entry must do no work beyond returning static data: no threads, no I/O, no allocation that
 *   must be freed. The library stays loaded until after the last instance it created is destroyed.
 *   Every plugin is first loaded in a short-lived child process (fork) that calls the entry and
 *   reports the driver names; only a plugin registering a driver the configuration selects is
 *   then loaded into the tracker. So a plugin's static constructors and entry run once or twice,
 *   must leave no trace outside the process (no files, no connections), and must return: a child
 *   that crashes, calls exit or takes more than 20 s gets the plugin refused, named in the log.
 *
 * THREADS (the rules every driver relies on and every host honours)
 *   - create / destroy run on the host's main thread, before any frontend starts and after every
 *     frontend has drained. No other call on that instance runs concurrently with them.
 *   - announce / scrape / scrape_all / tick run concurrently on ONE instance from every worker
 *     thread (and tick from the main thread). A driver is responsible for its own locking.
 *   - `done` completion callbacks fire exactly once per call, either inline (before the call
 *     returns, on the calling thread) or later from any thread the driver owns. The host never
 *     blocks waiting for one. After `done` returns the driver must not touch the request, the
 *     result or the completion again. A second `done` for one call is a driver bug: the host
 *     logs it and ignores it (see chihaya_completion for how it tells a stray `done` from the
 *     next call's). announce and scrape have a deadline, the host's [tracker] driver_timeout_ms:
 *     past it the client is answered "unavailable" and a later `done` is ignored (see
 *     chihaya_completion). A store that may hang still times out by itself, sooner, and
 *     completes with CHIHAYA_UNAVAILABLE: the deadline is the host's net, not the way to fail.
 *   - Host services (chihaya_host_api) may be called from any thread at any time between the
 *     entry call and the destroy of the plugin's last instance.
 *   - Storage calls have their own rules, written beside chihaya_storage_vtable.
 *   - (2.2) The cache's stats and the storage's health are synchronous state queries for the
 *     host's admin listener: called from the host's admin thread (or any thread), concurrently
 *     with every call above but create and destroy. Each returns within about a millisecond: it
 *     reads what the driver keeps up to date anyway, never does I/O, never waits for a lock
 *     held across I/O.
 *
 * MEMORY
 *   - The host owns every request, result and completion struct and every buffer they point into,
 *     from the call until the driver calls `done`. The driver keeps no pointer into them after
 *     that.
 *   - The driver owns its instance from create until destroy.
 *   - Strings handed to the driver (chihaya_str) are not NUL-terminated unless stated; they live
 *     as long as the call that carries them (config values: until create returns).
 */
#ifndef CHIHAYA_ABI_H
#define CHIHAYA_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHIHAYA_PLUGIN_MAGIC 0x43484948u /* "CHIH" */
#define CHIHAYA_ABI_MAJOR 2u
#define CHIHAYA_ABI_MINOR 3u
#define CHIHAYA_PLUGIN_ENTRY_SYMBOL "chihaya_plugin_entry"

/* True when a struct that starts with `struct_size` is large enough to hold `member`. */
#define CHIHAYA_HAS_MEMBER(ptr, type, member) \
    ((ptr)->struct_size >= offsetof(type, member) + sizeof(((type*)0)->member))

/* Element i of an array of structs that start with `struct_size`, walked with the writer's
 * stride. `type` is the reader's struct type; read only the members CHIHAYA_HAS_MEMBER allows. */
#define CHIHAYA_AT(type, array, i) \
    ((type*)((char*)(array) + (size_t)(i) * (size_t)(array)[0].struct_size))

/* Size of the messages a driver may write for the host (NUL-terminated, truncated to fit). A
 * failure's message goes to the host's log (rate-limited, with the driver's name), never to the
 * client, who gets a generic reason per status: write what an operator needs, never a secret. */
#define CHIHAYA_MESSAGE_CAP 160u

typedef struct chihaya_str {
    const char* ptr;
    size_t len;
} chihaya_str;

/* Result of every call. CHIHAYA_UNAVAILABLE means the backing store cannot be reached or did not
 * answer in time: the host tells the client "tracker storage unavailable" and keeps serving. */
typedef uint32_t chihaya_status;
#define CHIHAYA_OK 0u
#define CHIHAYA_INVALID 1u     /* the request or config is wrong; the message says how */
#define CHIHAYA_NOT_FOUND 2u   /* unknown torrent/user where the driver enforces a registry */
#define CHIHAYA_UNAVAILABLE 3u /* store down, slow or overloaded */
#define CHIHAYA_INTERNAL 4u    /* a bug or an exception caught at the boundary */
/* (2.1, appended) The client may not do this, and the host says why with a fixed reason; not
 * logged as a driver failure. A host that predates a code reads it as CHIHAYA_INTERNAL. */
#define CHIHAYA_KEY_MISMATCH 5u /* the peer announced with a BEP 7 key before; this announce's key
                                   is missing or another (see chihaya_announce_request.has_key) */
/* (2.3, appended) The store is at a budget the host asked it to hold: a new swarm while it holds
 * max_torrents, or a new peer while it holds max_peers (see chihaya_announce_request). Nothing
 * changed; peers already in the store keep being served. Not logged as a driver failure. */
#define CHIHAYA_FULL 6u
/* (2.3, appended) This client address has used its share: max_peers_per_address peers in this
 * swarm already, or a new swarm while the request carries CHIHAYA_ANNOUNCE_NO_NEW_SWARM. Nothing
 * changed. Not logged as a driver failure. */
#define CHIHAYA_ADDRESS_LIMIT 7u

typedef uint32_t chihaya_driver_kind;
#define CHIHAYA_KIND_CACHE 1u   /* swarm state: peers and counts, shared between tracker hosts */
#define CHIHAYA_KIND_STORAGE 2u /* the web application's database: users, torrents, deltas */

typedef uint32_t chihaya_log_level;
#define CHIHAYA_LOG_DEBUG 0u
#define CHIHAYA_LOG_INFO 1u
#define CHIHAYA_LOG_WARNING 2u
#define CHIHAYA_LOG_ERROR 3u

/* Services the host lends to plugins, so that plugins link no host symbol. Passed to the entry
 * and to create; valid until the plugin's last instance is destroyed. Thread-safe. */
typedef struct chihaya_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    /* Writes one log line attributed to `source` (the driver name). Never pass a secret
     * (password, passkey, connection string) in a message. */
    void (*log)(chihaya_log_level level, chihaya_str source, chihaya_str message);
    /* Monotonic milliseconds; the clock every expiry decision uses. */
    uint64_t (*now_ms)(void);
} chihaya_host_api;

/* ---- configuration ------------------------------------------------------------------------ */

typedef uint32_t chihaya_config_type;
#define CHIHAYA_CONFIG_STRING 1u
#define CHIHAYA_CONFIG_INT 2u
#define CHIHAYA_CONFIG_BOOL 3u

/* One key a driver accepts in its table ([cache.<name>] or [storage.<name>]). The host rejects
 * unknown keys, wrong types and integers outside [min, max] with file:line:key, fills defaults,
 * and prints the keys with their docs. Strings: NUL-terminated, static. A key whose value is a
 * secret (a password, a connection string) sets CHIHAYA_CONFIG_SECRET: the host never prints it. */
#define CHIHAYA_CONFIG_SECRET 0x1u
typedef struct chihaya_config_key {
    uint32_t struct_size;
    chihaya_config_type type;
    const char* key;
    const char* default_value; /* as it would be written in TOML, e.g. "256", "true", "\"x\"" */
    int64_t min;               /* INT only */
    int64_t max;               /* INT only */
    const char* doc;           /* one line */
    uint32_t flags;            /* CHIHAYA_CONFIG_SECRET */
    uint32_t reserved;
} chihaya_config_key;

/* One resolved value handed to create: every declared key is present exactly once. */
typedef struct chihaya_config_value {
    uint32_t struct_size;
    chihaya_config_type type;
    const char* key;      /* NUL-terminated, same pointer as in the declaration */
    chihaya_str string;   /* STRING */
    int64_t integer;      /* INT, and BOOL as 0/1 */
} chihaya_config_value;

typedef struct chihaya_config {
    uint32_t struct_size;
    uint32_t count;
    const chihaya_config_value* values; /* walk with CHIHAYA_AT */
} chihaya_config;

/* ---- completions -------------------------------------------------------------------------- */

/* Handed to every asynchronous call by pointer; host-owned until `done` has been called.
 * The driver calls done(ctx, status) exactly once; see THREADS above.
 *
 * `ctx` is opaque and names one call, not only its memory: pass back the very value the host put
 * here, copied when the call began (the C++ layer's chihaya::Completion does). The host reuses a
 * call's memory, and this struct, for later requests; a stray second `done` that carries its own
 * ctx is then recognised, logged and ignored, where one that re-reads ctx from this struct after
 * the host reused it cannot be told from the newer request's.
 *
 * DEADLINE (announce and scrape; not scrape_all, which may rightly walk every swarm)
 *   - If `done` has not come [tracker] driver_timeout_ms (default 5000 ms; the host's setting,
 *     read per call, live-reloadable) after the call began, the host answers the client with the
 *     generic "unavailable" reason (HTTP: bencoded `failure reason` "tracker storage unavailable";
 *     UDP: an error packet with that text), logs it under the driver's name (rate-limited) and
 *     counts it (chihaya_limit_hits_total{limit="driver_timeout_ms"}).
 *   - The call's memory stays valid and is not reused until `done` comes: the request, the result
 *     (message included), the peers buffer, the scrape entries and this completion. The driver
 *     may finish writing them and must still call `done` exactly once.
 *   - That late `done` is ignored: no second answer, nothing of the result reaches the client. It
 *     is logged ("done came N ms after its deadline"). Private mode still records an OK late
 *     announce's counters, which the store has applied.
 *   - A `done` that never comes pins that call's memory for good: the host never frees it under
 *     the driver, and a worker whose calls are all pinned stops serving (UDP: 512 calls per
 *     worker; HTTP: [http] max_connections). At shutdown, calls answered at their deadline do
 *     not delay the stop; destroy comes after the frontends stopped, and no `done` may come
 *     after destroy returned (complete what is still held, CHIHAYA_UNAVAILABLE, in destroy). */
typedef struct chihaya_completion {
    uint32_t struct_size;
    uint32_t reserved;
    void (*done)(void* ctx, chihaya_status status);
    void* ctx;
} chihaya_completion;

/* ---- cache: announce ---------------------------------------------------------------------- */

typedef uint8_t chihaya_event;
#define CHIHAYA_EVENT_NONE 0u /* values match BEP 15 */
#define CHIHAYA_EVENT_COMPLETED 1u
#define CHIHAYA_EVENT_STARTED 2u
#define CHIHAYA_EVENT_STOPPED 3u

typedef uint8_t chihaya_family;
#define CHIHAYA_IPV4 4u
#define CHIHAYA_IPV6 6u

/* Request flags. */
#define CHIHAYA_ANNOUNCE_TRACK_COUNTERS 0x1u /* keep uploaded/downloaded per peer and hand the
                                                previous values back (private mode deltas) */
#define CHIHAYA_ANNOUNCE_NO_NEW_SWARM 0x2u   /* (2.3) this address may create no swarm now: if
                                                the info_hash has none, answer
                                                CHIHAYA_ADDRESS_LIMIT and change nothing */

/* CACHE SEMANTICS: what an announce and a scrape must do (chihaya-conformance checks each rule).
 *   - A swarm is the set of peers of one info_hash. A peer is identified by (family, addr, port):
 *     the same address and port over IPv4 and over IPv6 are two peers.
 *   - An announce adds the peer, or updates it: left == 0 makes it a seeder, left > 0 a leecher,
 *     and it may move between the two. event STOPPED removes it. A peer not heard from for its
 *     request's peer_ttl_s expires: it leaves the counts and the answers, and if it announces
 *     again it is a new peer (had_previous == 0).
 *   - complete / incomplete count the swarm's seeders / leechers of both families, after this
 *     announce. downloaded counts `completed` events, once per peer: a peer that sends a second
 *     `completed` does not count again; a peer first seen with `completed` counts.
 *   - The answer: up to min(numwant, peers_capacity) other peers, chosen at random on every
 *     announce, of the requester's family only, never the requester itself, never one peer twice;
 *     a seeder gets only leechers, a leecher gets seeders and leechers. Fewer only when fewer
 *     exist. Nothing is written past peers_capacity entries.
 *   - had_previous is 1 when the peer was in the swarm before this announce. With
 *     CHIHAYA_ANNOUNCE_TRACK_COUNTERS the driver keeps each peer's uploaded/downloaded and hands
 *     back the values of its previous announce (also on its stopped announce); a stopped or
 *     expired peer is forgotten with them.
 *   - A scrape reports, per info_hash, the same three counts an announce would; zeros for a
 *     torrent the driver does not know.
 *   - All of this holds under concurrent announces and scrapes from many threads, and every
 *     call completes exactly once.
 */

/* One announce, already validated and normalised by the host:
 * port != 0, numwant <= what fits in the caller's peer buffer, event one of the values above.
 * A peer is identified in its swarm by (family, addr, port). */
typedef struct chihaya_announce_request {
    uint32_t struct_size;
    uint32_t flags;
    uint8_t info_hash[20];
    uint8_t peer_id[20];
    chihaya_family family;
    chihaya_event event;
    uint16_t port;        /* host byte order */
    uint8_t addr[16];     /* network byte order; IPv4 uses the first 4 bytes */
    uint64_t uploaded;
    uint64_t downloaded;
    uint64_t left;        /* 0 means the peer is a seeder */
    uint32_t numwant;     /* peers wanted, of the requester's own family; 0 is valid */
    uint32_t peer_ttl_s;  /* a peer not heard from for this long is gone */
    uint64_t now_ms;      /* host clock at receipt (chihaya_host_api.now_ms) */
    /* (2.1, appended; read only when struct_size covers them: CHIHAYA_HAS_MEMBER.) The client's
     * BEP 7 key (HTTP `key`, folded to 32 bits; UDP's key field when not 0). A driver that keeps
     * keys remembers the key a peer first announced with, and answers a later announce of that
     * (info_hash, family, addr, port) whose key is absent or another with CHIHAYA_KEY_MISMATCH,
     * changing nothing: someone else behind the same address cannot stop or move that peer.
     * Keeping keys is optional; a driver built for 2.0 does not see these members. */
    uint32_t key;
    uint32_t has_key;     /* 1 when the client sent a key */
    /* (2.3, appended) Budgets the host's [limits] asks the store to hold, so that one flood
     * cannot fill memory (0 = no limit; a driver built for 2.2 or older does not see them, and
     * the host warns at start-up that it cannot enforce them).
     *   - max_torrents: a new swarm while the store holds this many swarms is refused with
     *     CHIHAYA_FULL. max_peers: likewise a new peer while the store holds this many peers.
     *     Peers already in the store are always served (updates, moves, stops). The counts are
     *     the store's (every host sharing it together) and may lag by what is expired but not
     *     yet swept; a driver may overshoot by the announces in flight at once, never more.
     *   - max_peers_per_address: a new peer whose (family, addr) already has this many peers
     *     in this swarm (any ports) is refused with CHIHAYA_ADDRESS_LIMIT. A driver may group
     *     IPv6 addresses by /64 (one host holds a whole /64; the memory driver does), and the
     *     host's value is then per address as grouped. A driver may count through a table of
     *     counters shared by hash (never fewer than the truth), so it may refuse early under a
     *     hash collision, never admit more. A driver that enforces these budgets says so with
     *     CHIHAYA_DRIVER_PROVIDES_LIMITS. */
    uint32_t max_peers_per_address;
    uint32_t reserved_limits;
    uint64_t max_torrents;
    uint64_t max_peers;
} chihaya_announce_request;

/* The driver's answer, written into host-owned memory. */
typedef struct chihaya_announce_result {
    uint32_t struct_size;
    uint32_t peers_capacity;
    /* Output area owned by the host: room for `peers_capacity` compact entries of the
     * requester's family (6 bytes for IPv4: addr + port; 18 for IPv6), network byte order. */
    uint8_t* peers;
    uint32_t peer_count;  /* written: entries placed in `peers`; never the requester itself */
    uint32_t complete;    /* written: seeders, after this announce */
    uint32_t incomplete;  /* written: leechers, after this announce */
    uint32_t downloaded;  /* written: completed events counted for this torrent */
    uint8_t had_previous; /* written: 1 when the driver knew this peer before (see flags) */
    /* (2.3; a reserved byte before, so the layout is unchanged) written: 1 when this announce
     * created the swarm. The host charges it to the address's [limits] new-swarm rate. The host
     * sets it to 0 before the call, so a driver for 2.2 or older reads as "created nothing". */
    uint8_t created_swarm;
    /* (2.3; a reserved byte before) written with CHIHAYA_FULL or CHIHAYA_ADDRESS_LIMIT: which
     * budget refused, one of CHIHAYA_BUDGET_*. The host counts the refusal under that budget's
     * name and tells the client which; 0 (a driver that does not say) makes it guess from the
     * status and the request. */
    uint8_t refused_by;
    uint8_t reserved[5];
    uint64_t previous_uploaded;   /* written when TRACK_COUNTERS and had_previous */
    uint64_t previous_downloaded; /* written when TRACK_COUNTERS and had_previous */
    char message[CHIHAYA_MESSAGE_CAP]; /* written on failure: why, NUL-terminated */
} chihaya_announce_result;

/* Values of chihaya_announce_result.refused_by (2.3). */
#define CHIHAYA_BUDGET_MAX_TORRENTS 1u          /* CHIHAYA_FULL: a new swarm past max_torrents */
#define CHIHAYA_BUDGET_MAX_PEERS 2u             /* CHIHAYA_FULL: a new peer past max_peers */
#define CHIHAYA_BUDGET_PEERS_PER_ADDRESS 3u     /* CHIHAYA_ADDRESS_LIMIT: max_peers_per_address */
#define CHIHAYA_BUDGET_NEW_SWARM 4u             /* CHIHAYA_ADDRESS_LIMIT: NO_NEW_SWARM */

/* ---- cache: scrape ------------------------------------------------------------------------ */

/* Host-filled, host-strided: a driver walks request->entries with CHIHAYA_AT. */
typedef struct chihaya_scrape_entry {
    uint32_t struct_size;
    uint8_t info_hash[20];
    uint32_t complete;   /* written */
    uint32_t incomplete; /* written */
    uint32_t downloaded; /* written */
} chihaya_scrape_entry;

/* Counts for `count` torrents; the host fills info_hash, the driver the counts (zeros for a
 * torrent it does not know). */
typedef struct chihaya_scrape_request {
    uint32_t struct_size;
    uint32_t count;
    chihaya_scrape_entry* entries;
    uint64_t now_ms;
    char message[CHIHAYA_MESSAGE_CAP]; /* written on failure */
} chihaya_scrape_request;

/* Full scrape visitor: called once per torrent, from the thread that runs scrape_all or from
 * the driver's own thread, never concurrently for one scrape_all call. Returning 0 stops.
 * The entry is driver-filled (its struct_size is the driver's). */
typedef int (*chihaya_scrape_visit)(void* ctx, const chihaya_scrape_entry* entry);

/* ---- cache: stats (2.2) ------------------------------------------------------------------- */

/* What the cache holds right now, for the host's /metrics (torrents, seeders and leechers by
 * address family). Host-owned output: the host zeroes it and sets struct_size to its own sizeof;
 * the driver writes the members that struct_size covers (CHIHAYA_HAS_MEMBER) and never
 * struct_size itself, so a driver of a later minor does not write past an older host's struct
 * (the C++ layer does this for a driver). The counts follow the CACHE SEMANTICS above: a peer is
 * counted once, in its family, as a seeder (left == 0) or a leecher; a torrent counts while it
 * has a peer. They may lag behind expiry: a peer past its peer_ttl_s that the driver has not
 * swept yet may still count until its housekeeping reaches it. */
typedef struct chihaya_cache_stats {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t torrents;       /* written: torrents with at least one peer, of either family */
    uint64_t torrents_ipv4;  /* written: torrents with at least one IPv4 peer */
    uint64_t torrents_ipv6;  /* written: torrents with at least one IPv6 peer */
    uint64_t seeders_ipv4;   /* written */
    uint64_t leechers_ipv4;  /* written */
    uint64_t seeders_ipv6;   /* written */
    uint64_t leechers_ipv6;  /* written */
    char message[CHIHAYA_MESSAGE_CAP]; /* written on failure: why, NUL-terminated */
} chihaya_cache_stats;

/* ---- driver function tables --------------------------------------------------------------- */

typedef struct chihaya_instance chihaya_instance; /* opaque, owned by the driver */

typedef struct chihaya_cache_vtable {
    uint32_t struct_size;
    /* Main thread. On failure returns NULL and writes why into error[error_cap]. */
    chihaya_instance* (*create)(const chihaya_host_api* host, const chihaya_config* config,
                                char* error, size_t error_cap);
    /* Main thread, after every call on the instance has completed. */
    void (*destroy)(chihaya_instance* instance);
    /* One call per announce: apply the peer's change and choose peers in one operation, so a
     * networked store costs one round trip. Completion-based; see THREADS and MEMORY. */
    void (*announce)(chihaya_instance* instance, const chihaya_announce_request* request,
                     chihaya_announce_result* result, const chihaya_completion* completion);
    /* One call per scrape of any number of torrents. */
    void (*scrape)(chihaya_instance* instance, chihaya_scrape_request* request,
                   const chihaya_completion* completion);
    /* Every torrent the driver knows, for the (opt-in) full scrape. May be NULL. */
    void (*scrape_all)(chihaya_instance* instance, chihaya_scrape_visit visit, void* visit_ctx,
                       const chihaya_completion* completion);
    /* Housekeeping, about once a second from the main thread, concurrent with announces:
     * expire peers, drop empty swarms. Must return quickly. May be NULL. */
    void (*tick)(chihaya_instance* instance, uint64_t now_ms);
    /* 2.2, may be NULL (and is absent from the table of a plugin built for 2.0 or 2.1: the host
     * reads it as NULL). Fills `out` (see chihaya_cache_stats) and returns CHIHAYA_OK, or another
     * status with why in out->message when it cannot answer now. Synchronous and cheap (see
     * THREADS): the host calls it at every /metrics scrape, concurrently with announces, so a
     * driver keeps the counts as its swarms change (the memory driver: per-shard counters)
     * rather than walking them, and a driver that would need a round trip to its store leaves
     * it NULL. Without it, or when it fails, the host counts the totals through scrape_all
     * (every few seconds, with no family split). */
    chihaya_status (*stats)(chihaya_instance* instance, chihaya_cache_stats* out);
} chihaya_cache_vtable;

/* ---- storage: the web application's registry (2.1) ------------------------------------------
 * In private mode the host keeps users, torrents and the client whitelist in memory and never
 * asks the storage anything while answering an announce. The storage driver fills that registry
 * through a sink the host lends it, and keeps it current. */

/* Multipliers are in per mille: 1000 counts traffic once, 2000 twice, 0 not at all
 * (freeleech is a torrent download multiplier of 0). */
#define CHIHAYA_MULTIPLIER_ONE 1000u

#define CHIHAYA_ENABLED 0x1u /* flags of users and torrents: may announce */

typedef struct chihaya_user {
    uint32_t struct_size;
    uint32_t flags;               /* CHIHAYA_ENABLED */
    uint64_t id;
    chihaya_str passkey;          /* 1..64 bytes of [0-9A-Za-z_-]; a secret: never log it */
    uint32_t upload_multiplier;   /* per mille */
    uint32_t download_multiplier; /* per mille */
    uint32_t leech_slots;         /* torrents this user may leech at once; 0 = no limit */
    uint32_t reserved;
} chihaya_user;

typedef struct chihaya_torrent {
    uint32_t struct_size;
    uint32_t flags;               /* CHIHAYA_ENABLED */
    uint64_t id;
    uint8_t info_hash[20];
    uint32_t upload_multiplier;   /* per mille */
    uint32_t download_multiplier; /* per mille */
    uint32_t reserved;
} chihaya_torrent;

/* One allowed client: a peer_id whose first bytes equal `prefix` (e.g. "-lt20", "-qB4"). */
typedef struct chihaya_client {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t id;
    chihaya_str prefix;           /* 1..20 bytes */
} chihaya_client;

/* The host's registry as the storage driver sees it. Every function is host-implemented,
 * noexcept, and copies what it needs before returning. A driver calls them from one thread at a
 * time (never two calls concurrently). Rows are keyed by id: a second put of an id replaces it. */
typedef struct chihaya_registry_sink {
    uint32_t struct_size;
    uint32_t reserved;
    void* ctx;
    void (*put_user)(void* ctx, const chihaya_user* user);
    void (*remove_user)(void* ctx, uint64_t id);
    void (*put_torrent)(void* ctx, const chihaya_torrent* torrent);
    void (*remove_torrent)(void* ctx, uint64_t id);
    void (*put_client)(void* ctx, const chihaya_client* client);
    void (*remove_client)(void* ctx, uint64_t id);
    /* Forget everything: a complete load follows (used when the driver cannot tell what it
     * missed). Until `loaded` is called again the host keeps answering from what it had. */
    void (*reset)(void* ctx);
    /* A complete load (the first one, or one after reset) has been delivered. */
    void (*loaded)(void* ctx);
} chihaya_registry_sink;

/* ---- storage: accounting (2.1) --------------------------------------------------------------
 * The host turns each private-mode announce into per-peer accounting and hands the storage
 * batches of it. One delta per (user, torrent, peer_id) per batch. */

#define CHIHAYA_DELTA_ANCHORED 0x1u  /* the cache did not know this peer: credit the anchor report
                                        against the last report the storage keeps for the peer */
#define CHIHAYA_DELTA_COMPLETED 0x2u /* a `completed` event: record a snatch once per (user, torrent) */
#define CHIHAYA_DELTA_STOPPED 0x4u   /* the peer left: the storage may forget its last report */
#define CHIHAYA_DELTA_SEEDER 0x8u    /* left == 0 in the latest report */

typedef struct chihaya_peer_delta {
    uint32_t struct_size;
    uint32_t flags;                /* CHIHAYA_DELTA_* */
    uint64_t user_id;
    uint64_t torrent_id;
    uint8_t peer_id[20];
    uint32_t upload_multiplier;    /* per mille, for the anchored part */
    uint32_t download_multiplier;
    uint32_t reserved;
    /* Bytes to add to the user's totals, multipliers applied, as the host computed them from
     * reports it could chain to an accounted one (the cache's previous report, or an earlier
     * report of the same peer_id in this batch, over either address family); a report below its
     * own family's previous one, or a `started` one, opens a new session whose own total counts. */
    uint64_t credit_uploaded;
    uint64_t credit_downloaded;
    /* ANCHORED: the first report of the chain. The storage credits
     *   stored ? (anchor >= stored ? anchor - stored : anchor) : 0        (times the multiplier)
     * against the last report it keeps for the peer, then adds credit_*. */
    uint64_t anchor_uploaded;
    uint64_t anchor_downloaded;
    /* The latest cumulative report: what the storage keeps for the peer afterwards. */
    uint64_t uploaded;
    uint64_t downloaded;
    uint64_t left;
    uint64_t unix_ms;              /* wall-clock time of the latest report */
} chihaya_peer_delta;

/* Seeders and leechers of a torrent as the cache counted them at the last announce in the batch. */
typedef struct chihaya_torrent_stats {
    uint32_t struct_size;
    uint32_t seeders;
    uint64_t torrent_id;
    uint32_t leechers;
    uint32_t snatched;             /* the cache's completed count */
} chihaya_torrent_stats;

/* One batch. (host_id, sequence) names it: sequences of one host_id strictly increase, and the
 * storage applies a batch at most once, in one transaction, so that a batch re-sent after a lost
 * commit reply, a crash or a restart adds nothing. */
typedef struct chihaya_delta_batch {
    uint32_t struct_size;
    uint32_t delta_count;
    chihaya_str host_id;           /* stable across restarts of one tracker host */
    uint64_t sequence;
    const chihaya_peer_delta* deltas;       /* walk with CHIHAYA_AT */
    uint32_t torrent_count;
    uint32_t reserved;
    const chihaya_torrent_stats* torrents;  /* walk with CHIHAYA_AT */
    char message[CHIHAYA_MESSAGE_CAP];      /* written on failure */
} chihaya_delta_batch;

/* The storage kind: the web application's database.
 *
 * 2.0 defines only its lifetime; 2.1 appends private mode (subscribe, apply); 2.2 appends health
 * (for /readyz). A storage without subscribe and apply (the built-in "none") serves open mode
 * only; the host refuses private mode with it.
 *
 * THREADS for storage: create/subscribe/destroy on the main thread. subscribe delivers the
 * complete registry into `sink` before it returns (on the calling thread), then every later
 * change from the driver's own thread until destroy. apply is called one batch at a time, in
 * sequence order, by the host's flusher thread (and by the main thread for the last batches at
 * shutdown, after the flusher thread has ended); its completion may come from any thread. The
 * host may stop waiting for a completion after a deadline and send the same batch again later:
 * the (host_id, sequence) rule makes that harmless. health (2.2) comes from the admin thread at
 * any time after subscribe, concurrently with all of that. */
typedef struct chihaya_storage_vtable {
    uint32_t struct_size;
    chihaya_instance* (*create)(const chihaya_host_api* host, const chihaya_config* config,
                                char* error, size_t error_cap);
    void (*destroy)(chihaya_instance* instance);
    /* 2.1. Loads everything into `sink` (blocking; log progress for large tables), then keeps it
     * current within about a second of a change, re-syncing by itself after a lost connection.
     * The sink stays valid until destroy. On failure returns non-OK with why in error. */
    chihaya_status (*subscribe)(chihaya_instance* instance, const chihaya_registry_sink* sink,
                                char* error, size_t error_cap);
    /* 2.1. Applies one batch in one transaction, at most once per (host_id, sequence); a batch
     * already applied completes OK and changes nothing. UNAVAILABLE when the database cannot be
     * reached: the host keeps the batch and sends it again later. */
    void (*apply)(chihaya_instance* instance, chihaya_delta_batch* batch,
                  const chihaya_completion* completion);
    /* 2.2, may be NULL. Whether the store is reachable right now, for the host's /readyz: OK, or
     * CHIHAYA_UNAVAILABLE (or another status) with why in message[message_cap] (NUL-terminated,
     * for the operator: never a secret). Asked only while the storage serves private mode, after
     * subscribe returned OK, from the admin thread, concurrently with apply and the driver's own
     * threads (see THREADS).
     *
     * A state query, not a probe: the driver answers from what its connections last saw and
     * must keep that current by itself, also without traffic, so that a lost store shows within
     * a few seconds and a store that is back shows within a few seconds of the driver's
     * reconnect (postgres: its change listener reads the database at least every
     * poll_interval_ms and reconnects with a backoff of at most 5 s). Chosen over an
     * asynchronous round trip per call because (1) a subscribed storage already talks to its
     * store continually, so the answer is known without asking; (2) a round trip per /readyz
     * would turn a load balancer's polling into database load and need a connection of its own
     * (the driver's connections belong to its threads); (3) /readyz then never waits on the
     * storage, only on the cache's probe. The cost: the answer is as old as the driver's last
     * contact with its store, which is why keeping it current is part of the contract. */
    chihaya_status (*health)(chihaya_instance* instance, char* message, size_t message_cap);
} chihaya_storage_vtable;

/* Capabilities a driver declares in chihaya_driver_descriptor.flags (2.3).
 * CHIHAYA_DRIVER_PROVIDES_LIMITS: a cache driver that enforces the announce request's budgets
 * (max_torrents, max_peers, max_peers_per_address, NO_NEW_SWARM) and reports created_swarm.
 * Seeing the members (built for 2.3) is not enough: without this flag the host warns at start-up
 * that [limits] are not enforced. (C++ layer: `static constexpr uint32_t driver_flags =
 * CHIHAYA_DRIVER_PROVIDES_LIMITS;` in the driver class.) */
#define CHIHAYA_DRIVER_PROVIDES_LIMITS 0x1u

/* One driver a plugin offers. */
typedef struct chihaya_driver_descriptor {
    uint32_t struct_size;
    chihaya_driver_kind kind;
    const char* name; /* NUL-terminated, [a-z0-9_-]+, unique per kind across all plugins */
    uint32_t config_key_count;
    /* (2.3; a reserved 0 before, so the layout is unchanged) CHIHAYA_DRIVER_* capabilities. The
     * host reads them only from a plugin built for 2.3 or later. */
    uint32_t flags;
    const chihaya_config_key* config_keys; /* walk with CHIHAYA_AT */
    /* Points at a chihaya_cache_vtable or chihaya_storage_vtable, according to kind. */
    const void* vtable;
} chihaya_driver_descriptor;

/* What the entry symbol returns: static, constant data. */
typedef struct chihaya_plugin_descriptor {
    uint32_t magic;          /* CHIHAYA_PLUGIN_MAGIC */
    uint32_t abi_major;      /* CHIHAYA_ABI_MAJOR the plugin was built against */
    uint32_t abi_minor;      /* CHIHAYA_ABI_MINOR the plugin was built against */
    uint32_t struct_size;    /* sizeof(chihaya_plugin_descriptor) in the plugin's build */
    uint32_t min_host_minor; /* the oldest host minor (same major) the plugin works with */
    uint32_t driver_count;
    const char* name;        /* plugin name, for logs */
    const char* version;     /* plugin version, for logs */
    const chihaya_driver_descriptor* drivers; /* walk with CHIHAYA_AT */
} chihaya_plugin_descriptor;

typedef const chihaya_plugin_descriptor* (*chihaya_plugin_entry_fn)(const chihaya_host_api* host);

#ifdef __cplusplus
}
#endif

#endif /* CHIHAYA_ABI_H */
