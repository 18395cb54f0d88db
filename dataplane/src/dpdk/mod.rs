//! Thin safe layer over dpdk-sys (EAL, mempools, ethdev, mbufs).
