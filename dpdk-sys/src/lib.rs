//! Raw DPDK FFI (filled by the dpdk-sys work).
