//! Property test: over random fault schedules (loss, reordering, duplication, delay,
//! jitter, message size, seed) the transport keeps its promises: every call gets exactly
//! one answer, reliable calls execute at most once, ordered ones in issue order, bytes
//! arrive intact, nothing hangs.

use dataplane::port::sim::Impairment;
use dataplane::transport::sim::{run, SimConfig};
use dataplane::transport::TransportClass;
use proptest::prelude::*;

fn class() -> impl Strategy<Value = TransportClass> {
    prop_oneof![
        Just(TransportClass::Unreliable),
        Just(TransportClass::Reliable),
        Just(TransportClass::ReliableOrdered),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_faults(
        class in class(),
        loss in 0.0f64..0.3,
        reorder in 0.0f64..0.5,
        dup in 0.0f64..0.2,
        delay_ns in 1_000u64..100_000,
        jitter_ns in 0u64..20_000,
        msg_size in prop_oneof![Just(16usize), Just(1000), Just(5000), Just(20_000)],
        window_log2 in 0u32..=6,
        seed in any::<u64>(),
        in_place in any::<bool>(),
    ) {
        let mut cfg = SimConfig {
            rpcs: 150,
            class,
            impairment: Impairment { loss, reorder, dup, delay_ns, jitter_ns },
            msg_size,
            seed,
            in_place,
            ..SimConfig::default()
        };
        cfg.transport.window = 1 << window_log2;
        let r = run(&cfg).unwrap();
        prop_assert!(!r.hung, "hung: {:?}", r);
        prop_assert_eq!(r.completed + r.failed, r.sent);
        prop_assert_eq!(r.sent, 150);
        prop_assert_eq!(r.duplicate_answers, 0);
        prop_assert_eq!(r.corrupted_responses, 0);
        prop_assert_eq!(r.completed_not_executed, 0);
        if class.is_reliable() {
            prop_assert_eq!(r.duplicate_executions, 0);
            if loss < 0.2 {
                // 12 retries with backoff survive this loss rate.
                prop_assert_eq!(r.failed, 0, "{:?}", r);
            }
        }
        if class == TransportClass::ReliableOrdered {
            prop_assert_eq!(r.out_of_order_deliveries, 0);
        }
    }
}
