#!/usr/bin/env bash
# The offline path end to end: `ringwire capture -r BIG.pcap -w OUT.pcap EXPR`
# against `tcpdump -r BIG.pcap -w OUT.pcap EXPR` on a one-million-frame file in
# the page cache, alternately, several rounds; prints each run and the medians.
#   bash bench/offline-capture.sh [FRAMES] [ROUNDS] [EXPR...]
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-1000000}; rounds=${2:-5}; shift 2 || true
expr=${*:-udp and dst port 5001}
# The files go where a capture would normally live (a disk file system, in the
# page cache); DIR=/dev/shm measures tmpfs instead.
dir=$(mktemp -d "${DIR:-/var/tmp}/rw-offline.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT; echo "files in $dir"
./target/release/ringwire-gen --pcap-out "$dir/big.pcap" -n "$frames" --flows 64 --size "${SIZE:-64-512}" >/dev/null 2>&1
cat "$dir/big.pcap" > /dev/null   # in the page cache
t() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
rw=(); td=()
for r in $(seq "$rounds"); do
  a=$(t ./target/release/ringwire capture -r "$dir/big.pcap" -w "$dir/rw.pcap" $expr)
  b=$(t tcpdump -r "$dir/big.pcap" -w "$dir/td.pcap" $expr)
  echo "round $r: ringwire ${a} ms, tcpdump ${b} ms"
  rw+=("$a"); td+=("$b")
done
cmp <(tcpdump -nr "$dir/rw.pcap" 2>/dev/null | cut -d' ' -f2-) <(tcpdump -nr "$dir/td.pcap" 2>/dev/null | cut -d' ' -f2-) \
  && echo "outputs: the same $(tcpdump -nr "$dir/rw.pcap" 2>/dev/null | wc -l) frames"
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(med "${rw[@]}"); m2=$(med "${td[@]}")
echo "median of $rounds: ringwire ${m1} ms, tcpdump ${m2} ms, ratio $(awk -v a="$m1" -v b="$m2" 'BEGIN {printf "%.2f", b / a}')x ($frames frames, expression: $expr)"
