//! Replies from the address the NAS sent to.
//!
//! A socket bound to a wildcard address (`0.0.0.0:1812`, `[::]:1812`) sends from whichever
//! address the kernel picks for the route back. On a host with several addresses on the
//! NASes' network — a keepalived/VRRP virtual address, secondary addresses — that is often
//! not the address the NAS asked, and a NAS discards a reply from an address it did not
//! send to (most match the reply's source against the server they configured). So a
//! wildcard socket asks the kernel for each datagram's destination (`IP_PKTINFO`,
//! `IPV6_RECVPKTINFO`) and sends the reply from it, as FreeRADIUS does. A socket bound to
//! one address needs none of this and keeps the plain `recv_from`/`send_to`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks for each datagram's destination address on a wildcard socket; a socket bound to
/// one address is left alone (it has only one address to answer from).
pub fn enable(sock: &socket2::Socket, bound: &SocketAddr) -> io::Result<()> {
    if !bound.ip().is_unspecified() {
        return Ok(());
    }
    if bound.is_ipv4() {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
    } else {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)?;
    }
    Ok(())
}

/// Where a datagram arrived: the local address to answer from, and for IPv6 the
/// interface (a link-local address means nothing without it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub ip: IpAddr,
    ifindex: u32,
}

/// Receives one datagram; on a wildcard socket also its destination.
pub async fn recv(
    sock: &UdpSocket,
    wildcard: bool,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Destination>)> {
    if !wildcard {
        let (len, src) = sock.recv_from(buf).await?;
        return Ok((len, src, None));
    }
    sock.async_io(Interest::READABLE, || recv_with_destination(sock, buf))
        .await
}

/// Room for the control messages asked for (one IPv4 or IPv6 packet info), aligned as
/// `cmsghdr` must be.
const CMSG_ROOM: usize = 128;
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_ROOM]);

fn recv_with_destination(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Destination>)> {
    // On the stack rather than `cmsg_space!`'s Vec: no allocation per datagram.
    let mut cmsg = CmsgBuf([0; CMSG_ROOM]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0[..]),
        MsgFlags::empty(),
    )?;
    let src = msg
        .address
        .as_ref()
        .and_then(to_socket_addr)
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let mut dst = None;
    for c in msg.cmsgs()? {
        match c {
            // ipi_spec_dst, not ipi_addr: for a datagram sent to a broadcast address it is
            // the interface's own address, which a reply can leave from (ip(7)).
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                dst = Some(Destination {
                    ip: IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr))),
                    ifindex: 0,
                });
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(Destination {
                    ip: IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)),
                    ifindex: info.ipi6_ifindex,
                });
            }
            _ => {}
        }
    }
    Ok((msg.bytes, src, dst))
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    // The scope id too: a link-local NAS address means nothing without its interface.
    a.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(std::net::SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

/// Sends `bytes` to `to`, from `from` when the datagram's destination is known.
pub async fn send(
    sock: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Option<Destination>,
) -> io::Result<usize> {
    let Some(from) = from else {
        return sock.send_to(bytes, to).await;
    };
    sock.async_io(Interest::WRITABLE, || send_from(sock, bytes, to, from))
        .await
}

fn send_from(
    sock: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Destination,
) -> io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let dest = SockaddrStorage::from(to);
    let send = |cmsg: &[ControlMessage]| {
        sendmsg(sock.as_raw_fd(), &iov, cmsg, MsgFlags::empty(), Some(&dest))
    };
    let sent = match from.ip {
        IpAddr::V4(ip) => {
            // An interface index of 0 leaves the route to the kernel; only the source is set.
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            send(&[ControlMessage::Ipv4PacketInfo(&info)])
        }
        IpAddr::V6(ip) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: reply_ifindex(ip, &to, from.ifindex),
            };
            send(&[ControlMessage::Ipv6PacketInfo(&info)])
        }
    };
    Ok(sent?)
}

/// The interface an IPv6 reply is pinned to: the one the request arrived on where the
/// reply's source or the peer is link-local (such an address means nothing without its
/// link), else 0, which leaves the route to the kernel as the IPv4 branch does. Pinning
/// every reply lost some: a NAS on this host that sent from ::1 to the host's own fd00::2
/// arrives "on" eth0, but the route back to ::1 is lo, and the kernel took the sendmsg
/// pinned to eth0 and dropped the datagram, while the audit said the request was answered.
fn reply_ifindex(from: Ipv6Addr, to: &SocketAddr, arrived_on: u32) -> u32 {
    let peer_link_local = match to {
        SocketAddr::V6(v6) => v6.ip().is_unicast_link_local(),
        SocketAddr::V4(_) => false,
    };
    if from.is_unicast_link_local() || peer_link_local {
        arrived_on
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_buffer_holds_both_packet_infos() {
        assert!(nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo).len() <= CMSG_ROOM);
    }

    #[test]
    fn only_link_local_replies_are_pinned_to_the_interface_asked() {
        let global: Ipv6Addr = "fd00::2".parse().unwrap();
        let link_local: Ipv6Addr = "fe80::fc:ff:fe00:1".parse().unwrap();
        let peer = |s: &str| s.parse::<SocketAddr>().unwrap();
        // The route decides: ::1 → fd00::2 arrives on eth0 but goes back over lo.
        assert_eq!(reply_ifindex(global, &peer("[::1]:1812"), 4), 0);
        assert_eq!(reply_ifindex(global, &peer("[2001:db8::7]:1812"), 4), 0);
        assert_eq!(
            reply_ifindex(Ipv6Addr::LOCALHOST, &peer("[::1]:1812"), 1),
            0
        );
        // A link-local source or peer exists only on its link.
        assert_eq!(reply_ifindex(link_local, &peer("[fe80::2%4]:1812"), 4), 4);
        assert_eq!(reply_ifindex(link_local, &peer("[fd00::9]:1812"), 4), 4);
        assert_eq!(reply_ifindex(global, &peer("[fe80::2%4]:1812"), 4), 4);
        assert_eq!(reply_ifindex(global, &peer("[febf::1]:1812"), 4), 4);
        assert_eq!(reply_ifindex(global, &peer("[fec0::1]:1812"), 4), 0);
    }

    /// Loopback owns all of 127.0.0.0/8: a datagram to 127.0.0.2 on a wildcard socket is
    /// answered from 127.0.0.2, where the kernel alone would pick 127.0.0.1.
    #[tokio::test]
    async fn a_wildcard_socket_answers_from_the_address_asked() {
        let bound: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let server = crate::server::bind(&[bound]).unwrap().remove(0);
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let asked: SocketAddr = ([127, 0, 0, 2], port).into();
        client.send_to(b"ping", asked).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, src, dst) = recv(&server, true, &mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"ping");
        assert_eq!(src, client.local_addr().unwrap());
        let dst = dst.expect("the destination address");
        assert_eq!(dst.ip, asked.ip());
        send(&server, b"pong", src, Some(dst)).await.unwrap();
        let (len, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"pong");
        assert_eq!(from, asked);
    }

    /// The IPv6 path: the destination comes from IPV6_PKTINFO and the reply is sent with it.
    #[tokio::test]
    async fn a_wildcard_ipv6_socket_reads_the_destination() {
        let bound: SocketAddr = "[::]:0".parse().unwrap();
        let server = crate::server::bind(&[bound]).unwrap().remove(0);
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("[::1]:0").await.unwrap();
        let asked: SocketAddr = (Ipv6Addr::LOCALHOST, port).into();
        client.send_to(b"ping", asked).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, src, dst) = recv(&server, true, &mut buf).await.unwrap();
        assert_eq!(
            (&buf[..len], src),
            (&b"ping"[..], client.local_addr().unwrap())
        );
        assert_eq!(dst.expect("the destination address").ip, asked.ip());
        send(&server, b"pong", src, dst).await.unwrap();
        let (len, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..len], from), (&b"pong"[..], asked));
    }
}
