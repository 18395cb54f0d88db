//! The corpus of valid AppNet elements (firewall/ACL, rate limiter, fault injection,
//! logging, metrics, admission control, circuit breaker, sticky load balancer, cache,
//! mutation, session tracker), compiled by specgen; `tests/` drives them with crafted
//! RPC bytes. The `Inspect(Kinds) returns (Flags)` method runs no element: its messages
//! carry every remaining field kind for the codec and borrowed-twin tests.

include!(concat!(env!("OUT_DIR"), "/corpus.rs"));

// `near_miss`: names that come close to generated ones (messages `Viewer`, `Some`,
// `GetReference`, fields `type` next to `kind`, rpcs `Type` and `Dispatch`...), accepted
// by specgen's name pass; that this compiles is part of the test.
include!(concat!(env!("OUT_DIR"), "/near_miss.rs"));
