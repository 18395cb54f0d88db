//! The corpus of valid AppNet elements (firewall/ACL, rate limiter, fault injection,
//! logging, metrics, admission control, circuit breaker, sticky load balancer, cache,
//! mutation, session tracker), compiled by specgen; `tests/` drives them with crafted
//! RPC bytes. The `Inspect(Kinds) returns (Flags)` method runs no element: its messages
//! carry every remaining field kind for the codec and borrowed-twin tests.

include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
