/*
 * The DPDK headers dpdk-sys generates bindings for. Only includes: every declaration
 * comes from the system DPDK (pkg-config libdpdk). `rte_config.h` is force-included by
 * the pkg-config cflags (`-include rte_config.h`).
 */
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_thread.h>
#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_memory.h>
#include <rte_ring.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_ptype.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_bus_vdev.h>
#include <rte_eth_ring.h>
#include <rte_version.h>

#include "shim.h"
