//! Layout tests: the Rust view of the DPDK structs the project touches must match the C
//! compiler's (`sizeof`/`offsetof` exported by `src/shim.c`), and the constants bindgen
//! evaluated must match the C macros. A DPDK upgrade that moves a field fails here, not in
//! a corrupted packet.

use std::mem::{offset_of, size_of};

use dpdk_sys::*;

fn c(what: &str) -> usize {
    match c_layout(what) {
        Some(v) => v,
        None => panic!("shim.c does not know {what:?}"),
    }
}

macro_rules! same_size {
    ($t:ident) => {
        assert_eq!(
            size_of::<$t>(),
            c(stringify!($t)),
            "sizeof({})",
            stringify!($t)
        );
    };
}

macro_rules! same_offset {
    ($t:ident, $f:ident) => {
        same_offset!($t, $f, $f)
    };
    ($t:ident, $c_field:ident, $($rust_path:tt)+) => {
        assert_eq!(
            offset_of!($t, $($rust_path)+),
            c(concat!(stringify!($t), ".", stringify!($c_field))),
            "offsetof({}, {})",
            stringify!($t),
            stringify!($c_field)
        );
    };
}

#[test]
fn unknown_names_are_reported_as_none() {
    assert_eq!(c_layout("no_such_struct"), None);
    assert_eq!(c_layout("rte_mbuf.no_such_field"), None);
    assert_eq!(c_layout("nul\0inside"), None);
}

#[test]
fn constants_match_the_c_macros() {
    assert_eq!(RTE_MAX_LCORE as usize, c("RTE_MAX_LCORE"));
    assert_eq!(RTE_MAX_ETHPORTS as usize, c("RTE_MAX_ETHPORTS"));
    assert_eq!(RTE_ETHER_ADDR_LEN as usize, c("RTE_ETHER_ADDR_LEN"));
    assert_eq!(RTE_PKTMBUF_HEADROOM as usize, c("RTE_PKTMBUF_HEADROOM"));
    assert_eq!(
        RTE_ETHDEV_QUEUE_STAT_CNTRS as usize,
        c("RTE_ETHDEV_QUEUE_STAT_CNTRS")
    );
    assert_eq!(
        RTE_MBUF_DEFAULT_BUF_SIZE as usize,
        c("RTE_MBUF_DEFAULT_BUF_SIZE")
    );
    assert_eq!(
        RTE_MBUF_DEFAULT_BUF_SIZE,
        RTE_MBUF_DEFAULT_DATAROOM + RTE_PKTMBUF_HEADROOM
    );
    assert_eq!(RTE_ETHER_ADDR_LEN, 6);
}

#[test]
fn rss_flag_constants_are_the_documented_bits() {
    // RTE_ETH_RSS_IPV4 is RTE_BIT64(2), NONFRAG_IPV4_UDP RTE_BIT64(5) in DPDK 22.11.
    assert_eq!(FLATRPC_ETH_RSS_IPV4, 1 << 2);
    assert_eq!(FLATRPC_ETH_RSS_NONFRAG_IPV4_UDP, 1 << 5);
    assert_ne!(FLATRPC_ETH_RSS_IP & FLATRPC_ETH_RSS_IPV4, 0);
    assert_ne!(FLATRPC_ETH_RSS_UDP & FLATRPC_ETH_RSS_NONFRAG_IPV4_UDP, 0);
}

#[test]
fn rte_mbuf_layout() {
    same_size!(rte_mbuf);
    same_offset!(rte_mbuf, buf_addr);
    same_offset!(rte_mbuf, data_off);
    same_offset!(rte_mbuf, refcnt);
    same_offset!(rte_mbuf, nb_segs);
    same_offset!(rte_mbuf, port);
    same_offset!(rte_mbuf, ol_flags);
    same_offset!(rte_mbuf, packet_type, __bindgen_anon_1.packet_type);
    same_offset!(rte_mbuf, pkt_len);
    same_offset!(rte_mbuf, data_len);
    same_offset!(rte_mbuf, vlan_tci);
    same_offset!(rte_mbuf, hash, __bindgen_anon_2.hash);
    same_offset!(rte_mbuf, buf_len);
    same_offset!(rte_mbuf, pool);
    same_offset!(rte_mbuf, next);
    // Two cache lines, as DPDK promises.
    assert_eq!(size_of::<rte_mbuf>(), 128);
}

#[test]
fn ethdev_struct_layouts() {
    same_size!(rte_eth_conf);
    same_offset!(rte_eth_conf, link_speeds);
    same_offset!(rte_eth_conf, rxmode);
    same_offset!(rte_eth_conf, txmode);
    same_offset!(rte_eth_conf, rx_adv_conf);
    same_offset!(rte_eth_conf, intr_conf);

    same_size!(rte_eth_rss_conf);
    same_offset!(rte_eth_rss_conf, rss_key);
    same_offset!(rte_eth_rss_conf, rss_key_len);
    same_offset!(rte_eth_rss_conf, rss_hf);

    same_size!(rte_eth_dev_info);
    same_offset!(rte_eth_dev_info, driver_name);
    same_offset!(rte_eth_dev_info, max_rx_queues);
    same_offset!(rte_eth_dev_info, max_tx_queues);
    same_offset!(rte_eth_dev_info, flow_type_rss_offloads);
    same_offset!(rte_eth_dev_info, default_rxconf);
    same_offset!(rte_eth_dev_info, default_txconf);
    same_offset!(rte_eth_dev_info, rx_desc_lim);
    same_offset!(rte_eth_dev_info, tx_desc_lim);
    same_offset!(rte_eth_dev_info, nb_rx_queues);
    same_offset!(rte_eth_dev_info, nb_tx_queues);

    same_size!(rte_eth_stats);
    same_offset!(rte_eth_stats, ipackets);
    same_offset!(rte_eth_stats, opackets);
    same_offset!(rte_eth_stats, ibytes);
    same_offset!(rte_eth_stats, obytes);
    same_offset!(rte_eth_stats, imissed);
    same_offset!(rte_eth_stats, ierrors);
    same_offset!(rte_eth_stats, oerrors);
    same_offset!(rte_eth_stats, rx_nombuf);
    same_offset!(rte_eth_stats, q_ipackets);

    same_size!(rte_eth_link);
    same_size!(rte_ether_addr);
    same_offset!(rte_ether_addr, addr_bytes);
    same_size!(rte_mempool);
}

#[test]
fn header_struct_sizes() {
    same_size!(rte_ether_hdr);
    same_size!(rte_ipv4_hdr);
    same_size!(rte_udp_hdr);
    assert_eq!(size_of::<rte_ether_hdr>(), 14);
    assert_eq!(size_of::<rte_ipv4_hdr>(), 20);
    assert_eq!(size_of::<rte_udp_hdr>(), 8);
}

#[test]
fn static_inline_wrappers_are_linked() {
    // rte_is_power_of_2 is `static inline` in rte_common.h: callable only through the
    // generated wrapper. No EAL needed.
    // SAFETY: pure arithmetic functions without preconditions.
    unsafe {
        assert_eq!(rte_is_power_of_2(64), 1);
        assert_eq!(rte_is_power_of_2(65), 0);
        assert_eq!(rte_align32pow2(65), 128);
    }
}

#[test]
fn rte_errno_shim_round_trips() {
    // SAFETY: rte_errno is a thread-local int; setting and reading it has no other effect.
    unsafe {
        flatrpc_rte_errno_set(libc::EINVAL);
        assert_eq!(flatrpc_rte_errno(), libc::EINVAL);
        flatrpc_rte_errno_set(0);
        assert_eq!(flatrpc_rte_errno(), 0);
    }
}

#[test]
fn mtod_is_buf_addr_plus_data_off() {
    // The Rust side (dataplane's Mbuf::data) computes buf_addr + data_off itself; the C
    // macro must agree. A zeroed mbuf with a buffer is enough: mtod only reads fields.
    let mut buf = [0u8; 256];
    let mut m = rte_mbuf {
        buf_addr: buf.as_mut_ptr().cast(),
        data_off: 100,
        buf_len: 256,
        ..Default::default()
    };
    // SAFETY: m is a valid rte_mbuf value; the shim only does pointer arithmetic on it.
    let p = unsafe { flatrpc_pktmbuf_mtod(&mut m) };
    assert_eq!(p as usize, buf.as_ptr() as usize + 100);
}

#[test]
fn ptype_masks_are_the_documented_values() {
    // SAFETY: the shim functions return constants.
    unsafe {
        assert_eq!(flatrpc_ptype_l2_mask(), 0x0000_000f);
        assert_eq!(flatrpc_ptype_l3_mask(), 0x0000_00f0);
        assert_eq!(flatrpc_ptype_l4_mask(), 0x0000_0f00);
    }
}
