# Sends one UDP datagram in a hand-built IPv6 packet, with any source address
# (a forged one: ::ffff:127.0.0.1). For the mapped-source tests; run as root
# inside a network namespace the test created.
# usage: send6raw.py SRC DST DPORT HEXPAYLOAD
import socket, struct, sys

src, dst, dport, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
udp = struct.pack('!HHHH', 40000, dport, 8 + len(payload), 0) + payload
pseudo = s6 + d6 + struct.pack('!I3xB', len(udp), 17) + udp
if len(pseudo) % 2:
    pseudo += b'\0'
total = sum(struct.unpack('!%dH' % (len(pseudo) // 2), pseudo))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
csum = (~total & 0xffff) or 0xffff
udp = udp[:6] + struct.pack('!H', csum) + udp[8:]
packet = struct.pack('!IHBB', 6 << 28, len(udp), 17, 64) + s6 + d6 + udp
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.sendto(packet, (dst, 0))
