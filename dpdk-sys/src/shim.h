/*
 * Hand-written C for what bindgen cannot wrap: macros and per-lcore TLS variables.
 * Keep this tiny: anything that is a plain (static inline) function is wrapped by
 * bindgen's wrap_static_fns instead.
 */
#ifndef FLATRPC_DPDK_SHIM_H
#define FLATRPC_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

/* The calling thread's `rte_errno` (a per-lcore TLS variable behind a macro). */
int flatrpc_rte_errno(void);

/* Sets the calling thread's `rte_errno`. */
void flatrpc_rte_errno_set(int value);

/* rte_pktmbuf_mtod(m, void *): the start of the data (a macro in DPDK). */
struct rte_mbuf;
void *flatrpc_pktmbuf_mtod(struct rte_mbuf *m);

/* RTE_PTYPE_* masks (macros, not enums, so bindgen may miss the composed ones). */
uint32_t flatrpc_ptype_l2_mask(void);
uint32_t flatrpc_ptype_l3_mask(void);
uint32_t flatrpc_ptype_l4_mask(void);

/*
 * Flag macros built from RTE_BIT64(), which bindgen's macro evaluator cannot expand.
 * As `static const` values clang evaluates them and bindgen emits Rust constants.
 */
#include <rte_ethdev.h>
static const uint64_t FLATRPC_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t FLATRPC_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t FLATRPC_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t FLATRPC_ETH_RSS_IPV4 = RTE_ETH_RSS_IPV4;
static const uint64_t FLATRPC_ETH_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP;
static const uint64_t FLATRPC_ETH_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
static const uint64_t FLATRPC_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
static const uint64_t FLATRPC_ETH_RX_OFFLOAD_SCATTER = RTE_ETH_RX_OFFLOAD_SCATTER;
static const uint64_t FLATRPC_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
static const uint64_t FLATRPC_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

/* Composed macros (sizeof, casts) bindgen's macro evaluator skips. */
#include <rte_mempool.h>
#include <rte_lcore.h>
static const uint32_t FLATRPC_MEMPOOL_NAMESIZE = RTE_MEMPOOL_NAMESIZE;
static const int32_t FLATRPC_SOCKET_ID_ANY = SOCKET_ID_ANY;
static const uint32_t FLATRPC_LCORE_ID_ANY = LCORE_ID_ANY;

/*
 * The C compiler's view of a struct layout, for the layout tests: the size of a struct
 * (`what` = "rte_mbuf") or the offset of a field (`what` = "rte_mbuf.pkt_len").
 * Returns (size_t)-1 for a name it does not know.
 */
size_t flatrpc_layout(const char *what);

#endif
