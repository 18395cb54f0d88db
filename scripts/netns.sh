#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for running flatrpc ports against
# each other (or against the kernel) without touching the host's interfaces.
#
#   scripts/netns.sh up NAME     # makes NAME-a, NAME-b, NAME-va (in a), NAME-vb (in b)
#   scripts/netns.sh up-impaired NAME  # NAME-a, NAME-m, NAME-b: a relay slot in between
#   scripts/netns.sh down NAME   # removes them (all three); succeeds when already gone
#
#   up:          NAME-a: NAME-va 10.77.0.1/24        NAME-b: NAME-vb 10.77.0.2/24
#   up-impaired: NAME-a: NAME-va 10.77.0.1/24  <->  NAME-m: NAME-ma  NAME-mb  <->  NAME-b: NAME-vb 10.77.0.2/24
#
# up-impaired leaves a and b on one subnet with nothing joining them: run the
# impairment relay in the middle namespace and they talk through it as on one wire
# (ARP included, impaired alike):
#   ip netns exec NAME-m rpcbench impair --a NAME-ma --b NAME-mb --loss 0.01 --seed 1
# There, offloads are off on NAME-va / NAME-vb (tx checksum, TSO, GSO): the relay
# copies frames byte for byte, so a kernel-sent frame must be complete (a partial
# checksum would reach b's kernel as a bad one) and no larger than the MTU.
#
# Interface names are limited to 15 bytes by the kernel (IFNAMSIZ - 1), so NAME may
# be at most 12 characters ("NAME-va"). IPv6 is disabled in every namespace so that
# router solicitations / DAD / MLD do not add frames to measurements.
#
# Offloads: none are needed for flatrpc's own ports (AF_PACKET and DPDK write complete
# checksums). A veth's tx checksum offload matters only when the *kernel* sends UDP
# out of it to a packet-socket reader on the peer: the frame then carries a partial
# checksum (TP_STATUS_CSUMNOTREADY), which parse_udp_ipv4 would reject. Pass
# CSUM_OFF=1 to turn tx checksumming off with ethtool for such set-ups.
set -euo pipefail

usage() {
  echo "usage: $0 up|up-impaired|down NAME   (NAME: 1-12 chars of [A-Za-z0-9_])" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
name=$2
[[ "$name" =~ ^[A-Za-z0-9_]{1,12}$ ]] || usage
a="$name-a"; b="$name-b"; va="$name-va"; vb="$name-vb"
m="$name-m"; ma="$name-ma"; mb="$name-mb"

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

down() {
  for ns in "$a" "$b" "$m"; do
    if ns_exists "$ns"; then
      ip netns del "$ns"
      echo "deleted namespace $ns"
    fi
  done
  # Deleting a namespace deletes its veth end, and with it the peer.
}

up() {
  down >/dev/null
  ip netns add "$a"
  ip netns add "$b"
  for ns in "$a" "$b"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
  ip -n "$a" addr add 10.77.0.1/24 dev "$va"
  ip -n "$b" addr add 10.77.0.2/24 dev "$vb"
  ip -n "$a" link set "$va" up
  ip -n "$b" link set "$vb" up
  if [ "${CSUM_OFF:-0}" = 1 ]; then
    ip netns exec "$a" ethtool -K "$va" tx off >/dev/null
    ip netns exec "$b" ethtool -K "$vb" tx off >/dev/null
  fi
  mac_a=$(ip -n "$a" -br link show "$va" | awk '{print $3}')
  mac_b=$(ip -n "$b" -br link show "$vb" | awk '{print $3}')
  echo "namespace $a: $va 10.77.0.1/24 $mac_a"
  echo "namespace $b: $vb 10.77.0.2/24 $mac_b"
  echo "run inside with: ip netns exec $a COMMAND"
}

up_impaired() {
  down >/dev/null
  for ns in "$a" "$m" "$b"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip link add "$va" netns "$a" type veth peer name "$ma" netns "$m"
  ip link add "$mb" netns "$m" type veth peer name "$vb" netns "$b"
  ip -n "$a" addr add 10.77.0.1/24 dev "$va"
  ip -n "$b" addr add 10.77.0.2/24 dev "$vb"
  ip netns exec "$a" ethtool -K "$va" tx off tso off gso off >/dev/null
  ip netns exec "$b" ethtool -K "$vb" tx off tso off gso off >/dev/null
  for l in "$a $va" "$m $ma" "$m $mb" "$b $vb"; do
    set -- $l
    ip -n "$1" link set "$2" up
  done
  mac_a=$(ip -n "$a" -br link show "$va" | awk '{print $3}')
  mac_b=$(ip -n "$b" -br link show "$vb" | awk '{print $3}')
  echo "namespace $a: $va 10.77.0.1/24 $mac_a"
  echo "namespace $m: $ma (to $a)  $mb (to $b), no addresses"
  echo "namespace $b: $vb 10.77.0.2/24 $mac_b"
  echo "relay with: ip netns exec $m rpcbench impair --a $ma --b $mb --seed 1 [--loss P ...]"
}

case "$cmd" in
  up) up ;;
  up-impaired) up_impaired ;;
  down) down ;;
  *) usage ;;
esac
