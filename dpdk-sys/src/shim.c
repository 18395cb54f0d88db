/*
 * Implementation of shim.h. Must stay free of logic: each function only exposes a macro,
 * a TLS variable or a compiler fact to Rust.
 */
#include <string.h>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mbuf_ptype.h>
#include <rte_ethdev.h>
#include <rte_ether.h>

#include "shim.h"

int flatrpc_rte_errno(void) { return rte_errno; }

void flatrpc_rte_errno_set(int value) { rte_errno = value; }

void *flatrpc_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint32_t flatrpc_ptype_l2_mask(void) { return RTE_PTYPE_L2_MASK; }
uint32_t flatrpc_ptype_l3_mask(void) { return RTE_PTYPE_L3_MASK; }
uint32_t flatrpc_ptype_l4_mask(void) { return RTE_PTYPE_L4_MASK; }

#define SIZE(t)                                                                \
	if (strcmp(what, #t) == 0)                                             \
		return sizeof(struct t);
#define OFFSET(t, f)                                                           \
	if (strcmp(what, #t "." #f) == 0)                                      \
		return offsetof(struct t, f);

size_t flatrpc_layout(const char *what)
{
	if (what == NULL)
		return (size_t)-1;
	SIZE(rte_mbuf)
	OFFSET(rte_mbuf, buf_addr)
	OFFSET(rte_mbuf, data_off)
	OFFSET(rte_mbuf, refcnt)
	OFFSET(rte_mbuf, nb_segs)
	OFFSET(rte_mbuf, port)
	OFFSET(rte_mbuf, ol_flags)
	OFFSET(rte_mbuf, packet_type)
	OFFSET(rte_mbuf, pkt_len)
	OFFSET(rte_mbuf, data_len)
	OFFSET(rte_mbuf, vlan_tci)
	OFFSET(rte_mbuf, hash)
	OFFSET(rte_mbuf, buf_len)
	OFFSET(rte_mbuf, pool)
	OFFSET(rte_mbuf, next)
	SIZE(rte_eth_conf)
	OFFSET(rte_eth_conf, link_speeds)
	OFFSET(rte_eth_conf, rxmode)
	OFFSET(rte_eth_conf, txmode)
	OFFSET(rte_eth_conf, rx_adv_conf)
	OFFSET(rte_eth_conf, intr_conf)
	SIZE(rte_eth_rss_conf)
	OFFSET(rte_eth_rss_conf, rss_key)
	OFFSET(rte_eth_rss_conf, rss_key_len)
	OFFSET(rte_eth_rss_conf, rss_hf)
	SIZE(rte_eth_dev_info)
	OFFSET(rte_eth_dev_info, driver_name)
	OFFSET(rte_eth_dev_info, max_rx_queues)
	OFFSET(rte_eth_dev_info, max_tx_queues)
	OFFSET(rte_eth_dev_info, flow_type_rss_offloads)
	OFFSET(rte_eth_dev_info, default_rxconf)
	OFFSET(rte_eth_dev_info, default_txconf)
	OFFSET(rte_eth_dev_info, rx_desc_lim)
	OFFSET(rte_eth_dev_info, tx_desc_lim)
	OFFSET(rte_eth_dev_info, nb_rx_queues)
	OFFSET(rte_eth_dev_info, nb_tx_queues)
	SIZE(rte_eth_stats)
	OFFSET(rte_eth_stats, ipackets)
	OFFSET(rte_eth_stats, opackets)
	OFFSET(rte_eth_stats, ibytes)
	OFFSET(rte_eth_stats, obytes)
	OFFSET(rte_eth_stats, imissed)
	OFFSET(rte_eth_stats, ierrors)
	OFFSET(rte_eth_stats, oerrors)
	OFFSET(rte_eth_stats, rx_nombuf)
	OFFSET(rte_eth_stats, q_ipackets)
	SIZE(rte_eth_link)
	SIZE(rte_ether_addr)
	OFFSET(rte_ether_addr, addr_bytes)
	SIZE(rte_ether_hdr)
	SIZE(rte_ipv4_hdr)
	SIZE(rte_udp_hdr)
	SIZE(rte_mempool)
	if (strcmp(what, "RTE_MAX_LCORE") == 0)
		return RTE_MAX_LCORE;
	if (strcmp(what, "RTE_MAX_ETHPORTS") == 0)
		return RTE_MAX_ETHPORTS;
	if (strcmp(what, "RTE_ETHER_ADDR_LEN") == 0)
		return RTE_ETHER_ADDR_LEN;
	if (strcmp(what, "RTE_PKTMBUF_HEADROOM") == 0)
		return RTE_PKTMBUF_HEADROOM;
	if (strcmp(what, "RTE_MBUF_DEFAULT_BUF_SIZE") == 0)
		return RTE_MBUF_DEFAULT_BUF_SIZE;
	if (strcmp(what, "RTE_ETHDEV_QUEUE_STAT_CNTRS") == 0)
		return RTE_ETHDEV_QUEUE_STAT_CNTRS;
	return (size_t)-1;
}
