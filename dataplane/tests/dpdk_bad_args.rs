//! A bad EAL argument is an error carrying DPDK's `rte_errno` text, not a crash, and
//! DPDK is not asked to initialise twice. Its own test binary: the EAL can be
//! initialised (or fail to) only once per process.

#![cfg(feature = "dpdk")]

mod dpdk_common;

use dataplane::dpdk::{DpdkError, Eal, EthConfig, EthDev, Mempool};
use dataplane::port::dpdk::open_ports;

#[test]
fn a_bad_vdev_is_an_error_with_dpdk_text_and_is_not_retried() {
    dpdk_common::remove_stale_runtime_dirs();
    let args = dpdk_common::eal_args("badargs", &["net_nosuchdriver0"]);
    let err = Eal::init(&args).expect_err("an unknown vdev driver must fail");
    match &err {
        DpdkError::Call {
            call,
            port,
            errno,
            text,
        } => {
            assert_eq!(*call, "rte_eal_init");
            assert_eq!(*port, None);
            assert_eq!(*errno, libc::ENODEV);
            assert_eq!(text, "No such device");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("rte_eal_init failed: No such device"),
        "{err}"
    );
    assert!(Eal::get().is_none());

    // No second attempt, even with good arguments.
    let good = dpdk_common::eal_args("badargs2", &["net_null0"]);
    assert_eq!(Eal::init(&good).err(), Some(DpdkError::InitFailedEarlier));

    // Without an EAL every constructor refuses instead of crashing.
    assert_eq!(
        Mempool::new_pktmbuf("p", 64, 0, 2176).err(),
        Some(DpdkError::NotInitialised)
    );
    assert_eq!(
        open_ports("net_null0", &EthConfig::default()).err(),
        Some(DpdkError::NotInitialised)
    );
    assert_eq!(
        EthDev::create_vdev("net_null1", "").err(),
        Some(DpdkError::NotInitialised)
    );
}

#[test]
fn arguments_with_nul_bytes_are_rejected_before_dpdk() {
    // Runs in the same process as the test above, in either order: it must not touch
    // the EAL state, and it does not (the argument check comes first... unless the
    // other test already failed the EAL, which gives InitFailedEarlier).
    let args = vec!["--vdev=net_null0\0x".to_string()];
    match Eal::init(&args) {
        Err(DpdkError::Invalid(msg)) => assert!(msg.contains("NUL"), "{msg}"),
        Err(DpdkError::InitFailedEarlier) => {}
        other => panic!("unexpected {other:?}"),
    }
}
