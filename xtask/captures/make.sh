#!/usr/bin/env bash
# Makes the committed capture corpus (xtask/captures/*.pcap, *.pcapng) from a real network stack:
# two network namespaces joined by a veth pair, offloads off so every frame is wire-sized, traffic
# produced by the kernel's own TCP/IP stack between them, captured with tcpdump on one end.
# Only addresses inside those namespaces are used (10.231.0.0/24, fd00:231::/64); nothing leaves
# them; every loop is bounded; the namespaces are deleted on exit.
#
# Needs root, iproute2, ethtool, tcpdump, python3, editcap (Debian: wireshark-common) for the
# pcapng files. Usage: sudo bash xtask/captures/make.sh [OUTDIR]   (default: this directory)
# Then replay one:     cargo xtask simulate --pcap OUTDIR/ipv4.pcap --mode exercise
set -euo pipefail

OUT=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)
A=mdlpool-cap-a-$$
B=mdlpool-cap-b-$$
PY=$(command -v python3)
TMP=$(mktemp -d)
TCPDUMP_PID=
SERVER_PID=

cleanup() {
    if [ -n "$TCPDUMP_PID" ]; then kill "$TCPDUMP_PID" 2>/dev/null || true; fi
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add va netns "$A" type veth peer name vb netns "$B"
for ns in "$A" "$B"; do
    ip -n "$ns" link set lo up
done
ip -n "$A" addr add 10.231.0.1/24 dev va
ip -n "$B" addr add 10.231.0.2/24 dev vb
ip -n "$A" addr add fd00:231::1/64 dev va nodad
ip -n "$B" addr add fd00:231::2/64 dev vb nodad
# Offloads off: segmentation, checksums and scatter-gather done in software, so the capture holds
# the frames a NIC would put on the wire (no 64 KiB TSO super-frames, real checksums).
ip netns exec "$A" ethtool -K va tso off gso off gro off tx off rx off sg off >/dev/null 2>&1 || true
ip netns exec "$B" ethtool -K vb tso off gso off gro off tx off rx off sg off >/dev/null 2>&1 || true
ip -n "$A" link set va up
ip -n "$B" link set vb up

# A bounded TCP server in B: accepts `n` connections, reads each to EOF, answers with a digest line.
tcp_server() { # family addr port n
    ip netns exec "$B" timeout 30 "$PY" - "$@" <<'PY' &
import socket, sys, hashlib
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
s.listen(4)
for _ in range(int(sys.argv[4])):
    c, _ = s.accept()
    h = hashlib.sha256()
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
    c.sendall(h.hexdigest().encode() + b"\n")
    c.close()
PY
    SERVER_PID=$!
    sleep 0.5
}

# A TCP client in A: sends `bytes` of a deterministic payload, reads the answer.
tcp_client() { # family addr port bytes
    ip netns exec "$A" timeout 30 "$PY" - "$@" <<'PY'
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10)
n = int(sys.argv[4])
c.sendall(bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n)))
c.shutdown(socket.SHUT_WR)
print("tcp answer:", c.makefile().readline().strip()[:16])
c.close()
PY
}

# UDP datagrams from A to B (B need not listen: the ICMP port unreachable replies are traffic too).
udp_send() { # family addr port size count
    ip netns exec "$A" timeout 10 "$PY" - "$@" <<'PY'
import socket, sys, time
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for k in range(int(sys.argv[5])):
    s.sendto(bytes((k + i) & 0xFF for i in range(int(sys.argv[4]))), (sys.argv[2], int(sys.argv[3])))
    time.sleep(0.05)
PY
}

start_capture() { # file
    ip netns exec "$A" timeout -s INT 60 tcpdump --immediate-mode -i va -s 0 -U -n -w "$1" 2>"$TMP/tcpdump.log" &
    TCPDUMP_PID=$!
    sleep 1
}

stop_capture() {
    sleep 1
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
    TCPDUMP_PID=
    cat "$TMP/tcpdump.log" >&2
}

flush_neighbours() {
    ip -n "$A" neigh flush dev va
    ip -n "$B" neigh flush dev vb
}

# 1. IPv4: ARP, ICMP echo, a TCP transfer (SYN with MSS/SACK/timestamps/window scale), UDP with
#    port unreachables, and fragmented IPv4 (3000-byte echo, 4000-byte UDP datagram at MTU 1500).
flush_neighbours
start_capture "$TMP/ipv4.pcap"
ip netns exec "$A" ping -c 2 -i 0.2 -W 1 10.231.0.2 >/dev/null
tcp_server 4 10.231.0.2 5001 1
tcp_client 4 10.231.0.2 5001 16384
wait "$SERVER_PID"
udp_send 4 10.231.0.2 5002 200 3
ip netns exec "$A" ping -c 1 -W 1 -s 3000 10.231.0.2 >/dev/null
udp_send 4 10.231.0.2 5003 4000 1
stop_capture

# 2. IPv6: neighbour discovery (solicitation/advertisement), ICMPv6 echo, a TCP transfer, UDP.
flush_neighbours
start_capture "$TMP/ipv6.pcap"
ip netns exec "$A" ping -6 -c 2 -i 0.2 -W 1 fd00:231::2 >/dev/null
tcp_server 6 fd00:231::2 5001 1
tcp_client 6 fd00:231::2 5001 12000
wait "$SERVER_PID"
udp_send 6 fd00:231::2 5002 300 3
stop_capture

# 3. Jumbo frames: MTU 9000 on both ends; TCP segments of ~9 KB, 8900-byte echoes over IPv4 and IPv6.
ip -n "$A" link set va mtu 9000
ip -n "$B" link set vb mtu 9000
flush_neighbours
start_capture "$TMP/jumbo.pcap"
ip netns exec "$A" ping -c 2 -i 0.2 -W 1 -s 8900 10.231.0.2 >/dev/null
ip netns exec "$A" ping -6 -c 1 -W 1 -s 8900 fd00:231::2 >/dev/null
tcp_server 4 10.231.0.2 5001 1
tcp_client 4 10.231.0.2 5001 40000
wait "$SERVER_PID"
stop_capture

cp "$TMP/ipv4.pcap" "$OUT/ipv4.pcap"
editcap -F pcapng "$TMP/ipv6.pcap" "$OUT/ipv6.pcapng"
editcap -F pcapng "$TMP/jumbo.pcap" "$OUT/jumbo-9000.pcapng"
ls -l "$OUT"/*.pcap "$OUT"/*.pcapng
