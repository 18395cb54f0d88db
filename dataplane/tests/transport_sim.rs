//! Deterministic simulations (fixed seeds) of a client and a server transport over the
//! impaired `sim` link: the promises of each class under loss, reordering and
//! duplication, large messages, and the goodput of ordered delivery under loss.

use dataplane::port::sim::Impairment;
use dataplane::transport::sim::{run, SimConfig, SimReport};
use dataplane::transport::TransportClass;

fn harsh() -> Impairment {
    Impairment {
        loss: 0.10,
        reorder: 0.25,
        dup: 0.05,
        delay_ns: 10_000,
        jitter_ns: 2_000,
    }
}

fn sim(class: TransportClass, imp: Impairment, rpcs: u64, msg_size: usize, seed: u64) -> SimReport {
    sim_with(class, imp, rpcs, msg_size, seed, false)
}

/// `sim`, optionally through the in-place API (`call_in_place`, `receive`,
/// `respond_in_place`); checks that the in-place paths were taken.
fn sim_with(
    class: TransportClass,
    imp: Impairment,
    rpcs: u64,
    msg_size: usize,
    seed: u64,
    in_place: bool,
) -> SimReport {
    let cfg = SimConfig {
        rpcs,
        class,
        impairment: imp,
        msg_size,
        seed,
        in_place,
        ..SimConfig::default()
    };
    let r = run(&cfg).expect("valid simulation config");
    assert!(!r.hung, "run hung: {r:#?}");
    assert_eq!(r.sent, rpcs);
    assert_eq!(r.completed + r.failed, rpcs, "every call answered");
    assert_eq!(r.duplicate_answers, 0, "a call answered twice");
    assert_eq!(r.corrupted_responses, 0, "a response with the wrong bytes");
    assert_eq!(r.completed_not_executed, 0, "an answer without execution");
    if in_place && msg_size <= cfg.transport.mtu_payload {
        assert!(
            r.client.sent_in_place > 0 && r.server.sent_in_place > 0,
            "{r:#?}"
        );
        assert!(r.server.requests_in_place > 0, "{r:#?}");
        assert!(r.client.answers_in_place > 0, "{r:#?}");
    } else {
        assert_eq!(
            r.client.sent_in_place + r.server.requests_in_place + r.client.answers_in_place,
            0
        );
    }
    r
}

fn assert_exactly_once(r: &SimReport) {
    assert_eq!(r.failed, 0, "{r:#?}");
    assert_eq!(r.completed, r.sent);
    assert_eq!(r.duplicate_executions, 0, "{r:#?}");
    assert_eq!(r.executed, r.sent, "each call executed exactly once");
}

#[test]
fn reliable_is_exactly_once_under_loss_reorder_and_duplication() {
    for (seed, in_place) in [(1, false), (2, false), (3, false), (1, true), (2, true)] {
        let r = sim_with(TransportClass::Reliable, harsh(), 2000, 64, seed, in_place);
        assert_exactly_once(&r);
        assert!(r.retransmissions > 0, "10% loss must need retransmissions");
        assert!(
            r.link_client_to_server.duplicated > 0,
            "the link duplicated"
        );
        assert!(r.link_client_to_server.reordered > 0, "the link reordered");
    }
}

#[test]
fn reliable_ordered_reaches_the_handler_in_issue_order() {
    for (seed, in_place) in [(1, false), (2, false), (3, false), (1, true), (2, true)] {
        let r = sim_with(
            TransportClass::ReliableOrdered,
            harsh(),
            2000,
            64,
            seed,
            in_place,
        );
        assert_exactly_once(&r);
        assert_eq!(r.out_of_order_deliveries, 0, "{r:#?}");
        assert!(
            r.server.reorder_held > 0,
            "the reorder buffer was exercised"
        );
    }
}

#[test]
fn unreliable_completes_or_times_out_never_hangs() {
    for in_place in [false, true] {
        let r = sim_with(TransportClass::Unreliable, harsh(), 2000, 64, 4, in_place);
        assert!(r.completed > 0 && r.failed > 0, "{r:#?}");
        assert_eq!(r.failed, r.timeouts, "unreliable failures are timeouts");
        // No per-RPC state on the server: duplicated requests are executed again.
        assert!(r.duplicate_executions > 0);
        assert_eq!(r.retransmissions, 0, "unreliable never retransmits");
    }
}

#[test]
fn large_messages_round_trip_under_loss() {
    let lossy = Impairment {
        loss: 0.05,
        reorder: 0.0,
        dup: 0.0,
        delay_ns: 10_000,
        jitter_ns: 2_000,
    };
    let r = sim(TransportClass::Reliable, lossy, 60, 64 << 10, 5);
    assert_exactly_once(&r);
    assert!(r.server.retransmissions > 0 && r.client.retransmissions > 0);
    // Selective recovery: far fewer fragments re-sent than a whole-message resend.
    let frags_per_msg = (64 << 10) / 1440 + 1;
    assert!(
        r.retransmissions < 60 * frags_per_msg as u64,
        "re-sent {} fragments for 60 messages of {frags_per_msg}",
        r.retransmissions
    );
    let r = sim(TransportClass::ReliableOrdered, lossy, 6, 1 << 20, 6);
    assert_exactly_once(&r);
    assert_eq!(r.out_of_order_deliveries, 0);
}

#[test]
fn ordered_goodput_at_one_percent_loss_is_at_least_80_percent() {
    let base = Impairment {
        loss: 0.0,
        reorder: 0.0,
        dup: 0.0,
        delay_ns: 10_000,
        jitter_ns: 2_000,
    };
    let lossy = Impairment { loss: 0.01, ..base };
    let clean = sim(TransportClass::ReliableOrdered, base, 5000, 64, 7);
    let lost = sim(TransportClass::ReliableOrdered, lossy, 5000, 64, 7);
    assert_exactly_once(&lost);
    let ratio = lost.goodput_rps / clean.goodput_rps;
    assert!(ratio >= 0.8, "goodput ratio {ratio:.3}");
    assert_eq!(
        clean.retransmissions, 0,
        "no spurious retransmission without loss"
    );
}

#[test]
fn same_seed_same_run() {
    let a = sim(TransportClass::ReliableOrdered, harsh(), 300, 3000, 9);
    let b = sim(TransportClass::ReliableOrdered, harsh(), 300, 3000, 9);
    assert_eq!(a.sim_seconds, b.sim_seconds);
    assert_eq!(a.retransmissions, b.retransmissions);
    assert_eq!(a.client, b.client);
}
