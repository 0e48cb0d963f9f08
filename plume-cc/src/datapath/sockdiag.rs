//! Which TCP sockets exist, by socket cookie, in every network namespace:
//! the daemon's test for "this flow's socket is gone".
//!
//! Why it is needed: the program deletes a flow's entries when its socket
//! passes TCP_CLOSE, but a socket destroyed with its network namespace
//! (an iperf3 in a namespace that was deleted) never passes it, and its
//! entries would stay in the maps for ever; an idle one that still carries a
//! limit also keeps a stopped daemon's datapath attached in observe-only
//! mode (issue 14).
//!
//! How: a `SOCK_DIAG_BY_FAMILY` dump (`inet_diag`, the interface `ss` uses)
//! for IPv4 and IPv6 TCP sockets in every state. Each answer carries the
//! socket's cookie (`sock_gen_cookie`, the value `bpf_get_socket_cookie`
//! returns in the program). A netlink socket sees only its own network
//! namespace, and a cgroup's flows may live in several (the link emulator
//! runs its senders in their own), so the dump runs once per namespace,
//! from a short-lived thread that has joined it (`setns`, root only).
//! Namespaces are found through `/proc/*/ns/net` and the bind mounts of
//! `ip netns` (`/run/netns`).
//!
//! Why not ask for one cookie at a time: the kernel's exact lookup
//! (`inet_diag_find_one_icsk`) needs the flow's addresses and ports, which
//! the map does not keep for IPv6, and it too is per namespace.
//!
//! The answer is only trusted when every namespace could be read: any
//! failure is an error, and the caller then removes nothing.

use std::{
    collections::{HashMap, HashSet},
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Errors of a socket listing.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// A netlink operation failed.
    #[error("sock_diag netlink {op}: {source}")]
    Netlink {
        /// What was attempted.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The kernel's answer could not be parsed.
    #[error("sock_diag: malformed answer ({0})")]
    Malformed(String),
    /// A network namespace could not be entered (needs root).
    #[error("entering network namespace {path}: {source}")]
    Namespace {
        /// Its nsfs file.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, sockid (48 bytes).
const REQ_LEN: usize = 8 + 48;
/// Offset of `id.idiag_cookie` in `struct inet_diag_msg` (family, state,
/// timer, retrans, then the sockid: ports 4, addresses 32, interface 4).
const MSG_COOKIE_OFFSET: usize = 4 + 4 + 32 + 4;

/// The dump request for one address family, every TCP state.
fn request(family: u8, seq: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + REQ_LEN];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b[NLMSG_HDRLEN] = family;
    b[NLMSG_HDRLEN + 1] = libc::IPPROTO_TCP as u8;
    // idiag_states: every state (a bit per TCP state).
    b[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].copy_from_slice(&u32::MAX.to_ne_bytes());
    b
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Adds the cookies of one received datagram (several netlink messages) to
/// `out`; returns true at the end of the dump (`NLMSG_DONE`). The tests'
/// view of [`parse_with`].
#[cfg(test)]
fn parse(buf: &[u8], out: &mut HashSet<u64>) -> Result<bool, SockDiagError> {
    parse_with(buf, &mut |body| {
        out.insert(cookie_of_msg(body)?);
        Ok(())
    })
}

/// The socket cookie of one `inet_diag_msg`.
fn cookie_of_msg(body: &[u8]) -> Result<u64, SockDiagError> {
    let lo = u32_at(body, MSG_COOKIE_OFFSET);
    let hi = u32_at(body, MSG_COOKIE_OFFSET + 4);
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Err(SockDiagError::Malformed(format!(
            "inet_diag_msg of {} bytes",
            body.len()
        )));
    };
    Ok(u64::from(hi) << 32 | u64::from(lo))
}

/// Hands every `inet_diag_msg` of one received datagram to `on`; returns
/// true at the end of the dump (`NLMSG_DONE`).
fn parse_with(
    buf: &[u8],
    on: &mut dyn FnMut(&[u8]) -> Result<(), SockDiagError>,
) -> Result<bool, SockDiagError> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, at).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(SockDiagError::Malformed(format!(
                "message of {len} bytes at {at} in {}",
                buf.len()
            )));
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let body = &buf[at + NLMSG_HDRLEN..at + len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).map_or(0, |e| -(e as i32));
                return Err(SockDiagError::Netlink {
                    op: "dump",
                    source: io::Error::from_raw_os_error(errno),
                });
            }
            SOCK_DIAG_BY_FAMILY => on(body)?,
            _ => {}
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        at += (len + 3) & !3;
    }
    Ok(false)
}

fn netlink_err(op: &'static str) -> impl FnOnce(io::Error) -> SockDiagError {
    move |source| SockDiagError::Netlink { op, source }
}

/// The cookies of every TCP socket in the caller's (thread's) network namespace.
pub fn tcp_cookies_here(out: &mut HashSet<u64>) -> Result<(), SockDiagError> {
    dump_here(&mut |body| {
        out.insert(cookie_of_msg(body)?);
        Ok(())
    })
}

/// Where one TCP socket's two ends are, as `ss` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The local address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// The two ends of one `inet_diag_msg`: `idiag_family` at 0, then the
/// `inet_diag_sockid` at 4 (`idiag_sport`, `idiag_dport` in network byte
/// order, `idiag_src[4]`, `idiag_dst[4]`: an IPv4 address fills the first
/// four bytes; linux/inet_diag.h).
fn endpoints_of_msg(body: &[u8]) -> Result<Endpoints, SockDiagError> {
    let bad = || SockDiagError::Malformed(format!("inet_diag_msg of {} bytes", body.len()));
    let b = body.get(..4 + 4 + 32).ok_or_else(bad)?;
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let ip = |at: usize| -> Result<IpAddr, SockDiagError> {
        match i32::from(b[0]) {
            libc::AF_INET => Ok(IpAddr::from(
                <[u8; 4]>::try_from(&b[at..at + 4]).map_err(|_| bad())?,
            )),
            libc::AF_INET6 => Ok(IpAddr::from(
                <[u8; 16]>::try_from(&b[at..at + 16]).map_err(|_| bad())?,
            )),
            f => Err(SockDiagError::Malformed(format!("address family {f}"))),
        }
    };
    Ok(Endpoints {
        local: SocketAddr::new(ip(8)?, port(4)),
        remote: SocketAddr::new(ip(24)?, port(6)),
    })
}

/// The two ends of every TCP socket in the caller's network namespace, by
/// cookie (what `status` shows for IPv6 flows, whose addresses the flow map
/// does not keep). No root needed in one's own namespace.
pub fn tcp_endpoints_here() -> Result<HashMap<u64, Endpoints>, SockDiagError> {
    let mut out = HashMap::new();
    dump_here(&mut |body| {
        out.insert(cookie_of_msg(body)?, endpoints_of_msg(body)?);
        Ok(())
    })?;
    Ok(out)
}

/// Dumps every IPv4 and IPv6 TCP socket of the caller's network namespace,
/// handing each `inet_diag_msg` to `on`.
fn dump_here(on: &mut dyn FnMut(&[u8]) -> Result<(), SockDiagError>) -> Result<(), SockDiagError> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(netlink_err("socket")(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = vec![0u8; 64 * 1024];
    for (seq, family) in [(1u32, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        let req = request(family, seq);
        // SAFETY: req is a valid buffer of req.len() bytes; the kernel
        // address (pid 0) is the default destination of a netlink send.
        let sent = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(netlink_err("send")(io::Error::last_os_error()));
        }
        loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(netlink_err("recv")(e));
            }
            if n == 0 || parse_with(&buf[..n as usize], on)? {
                break;
            }
        }
    }
    Ok(())
}

/// One nsfs file per network namespace other than ours: the `ns/net` of
/// every thread of every process (a thread may have joined another
/// namespace than its process's main thread), and `ip netns`'s bind
/// mounts, each namespace once.
fn other_namespaces() -> Vec<PathBuf> {
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mut seen = HashSet::new();
    if let Some(own) = id(Path::new("/proc/thread-self/ns/net")) {
        seen.insert(own);
    }
    let numeric = |e: &std::fs::DirEntry| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(numeric)
        .flat_map(|e| {
            std::fs::read_dir(e.path().join("task"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(numeric)
                .map(|t| t.path().join("ns/net"))
                .collect::<Vec<_>>()
        })
        .collect();
    candidates.extend(
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path()),
    );
    candidates
        .into_iter()
        .filter(|p| id(p).is_some_and(|k| seen.insert(k)))
        .collect()
}

/// The cookies of every TCP socket in the namespace of nsfs file `ns`,
/// read from a thread that joins it (the caller's namespace is unchanged).
fn tcp_cookies_in(ns: &Path, out: &mut HashSet<u64>) -> Result<(), SockDiagError> {
    let file = match std::fs::File::open(ns) {
        Ok(f) => f,
        // The process exited since the listing: its namespace, if it
        // still exists, is held by something else we also list.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SockDiagError::Namespace {
                path: ns.to_owned(),
                source,
            })
        }
    };
    let path = ns.to_owned();
    let found = std::thread::scope(|s| {
        s.spawn(move || -> Result<HashSet<u64>, SockDiagError> {
            // SAFETY: setns on this thread only (it exits right after);
            // the descriptor is a valid nsfs file.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(SockDiagError::Namespace {
                    path,
                    source: io::Error::last_os_error(),
                });
            }
            let mut set = HashSet::new();
            tcp_cookies_here(&mut set)?;
            Ok(set)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SockDiagError::Malformed(
                "the namespace reader panicked".into(),
            ))
        })
    })?;
    out.extend(found);
    Ok(())
}

/// The cookies of every TCP socket in every network namespace of the host
/// (see the module docs). Needs root to enter other namespaces.
pub fn live_tcp_cookies() -> Result<HashSet<u64>, SockDiagError> {
    let mut out = HashSet::new();
    tcp_cookies_here(&mut out)?;
    for ns in other_namespaces() {
        tcp_cookies_in(&ns, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` with `body`, padded to 4 bytes.
    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m.resize((len + 3) & !3, 0);
        m
    }

    fn diag_msg(cookie: u64) -> Vec<u8> {
        // struct inet_diag_msg is 72 bytes.
        let mut b = vec![0u8; 72];
        b[MSG_COOKIE_OFFSET..MSG_COOKIE_OFFSET + 4].copy_from_slice(&(cookie as u32).to_ne_bytes());
        b[MSG_COOKIE_OFFSET + 4..MSG_COOKIE_OFFSET + 8]
            .copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        b
    }

    #[test]
    fn answers_are_parsed_into_cookies() {
        let mut buf = message(SOCK_DIAG_BY_FAMILY, &diag_msg(0x1234_5678_9abc_def0));
        buf.extend(message(SOCK_DIAG_BY_FAMILY, &diag_msg(7)));
        let mut out = HashSet::new();
        assert!(!parse(&buf, &mut out).unwrap(), "no DONE yet");
        assert_eq!(out, HashSet::from([0x1234_5678_9abc_def0, 7]));
        buf.extend(message(NLMSG_DONE, &[0; 4]));
        assert!(parse(&buf, &mut out).unwrap());
        // An error answer carries -errno.
        let e = parse(
            &message(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes()),
            &mut out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ermi"), "{e}");
        // A truncated message is refused, not read past.
        let mut cut = message(SOCK_DIAG_BY_FAMILY, &diag_msg(9));
        cut.truncate(30);
        assert!(matches!(
            parse(&cut, &mut out),
            Err(SockDiagError::Malformed(_))
        ));
        assert!(matches!(
            parse(&message(SOCK_DIAG_BY_FAMILY, &[0; 8]), &mut out),
            Err(SockDiagError::Malformed(_))
        ));
    }

    #[test]
    fn the_request_is_what_the_kernel_expects() {
        let r = request(libc::AF_INET6 as u8, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_at(&r, 0), Some(72));
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), SOCK_DIAG_BY_FAMILY);
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[17], libc::IPPROTO_TCP as u8);
        assert_eq!(u32_at(&r, 20), Some(u32::MAX));
    }

    fn cookie_of(s: &impl std::os::fd::AsRawFd) -> u64 {
        let mut v = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: SO_COOKIE writes a u64 into v.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_COOKIE,
                (&mut v as *mut u64).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        v
    }

    /// A socket in another network namespace, which only a thread holds
    /// (no process's main thread, no bind mount), is found by the listing
    /// of every namespace and not by the one of ours; once closed it is
    /// found by neither.
    #[test]
    #[ignore = "needs root (CAP_SYS_ADMIN, to unshare and enter network namespaces)"]
    fn a_socket_in_another_namespace_is_found() {
        use std::sync::mpsc;
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // SAFETY: unshare on this thread only.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            tx.send(cookie_of(&l)).unwrap();
            done_rx.recv().unwrap();
        });
        let cookie = rx.recv().unwrap();
        let mut here = HashSet::new();
        tcp_cookies_here(&mut here).unwrap();
        assert!(!here.contains(&cookie), "our namespace cannot see it");
        assert!(live_tcp_cookies().unwrap().contains(&cookie));
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(!live_tcp_cookies().unwrap().contains(&cookie));
    }

    /// Both ends of live IPv4 and IPv6 loopback connections, by cookie, as
    /// the sockets themselves see them.
    #[test]
    fn endpoints_are_read_for_both_families() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(bind) else {
                eprintln!("*** SKIPPED {bind}: no such loopback address here ***");
                continue;
            };
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let all = tcp_endpoints_here().unwrap();
            let c = all[&cookie_of(&client)];
            assert_eq!(c.local, client.local_addr().unwrap());
            assert_eq!(c.remote, client.peer_addr().unwrap());
            let s = all[&cookie_of(&server)];
            assert_eq!((s.local, s.remote), (c.remote, c.local));
        }
        // A message too short for its addresses is refused.
        assert!(matches!(
            endpoints_of_msg(&[libc::AF_INET as u8; 20]),
            Err(SockDiagError::Malformed(_))
        ));
    }

    /// A live loopback connection's cookie is listed, and no longer once
    /// both ends are closed (no root needed in one's own namespace).
    #[test]
    fn a_live_socket_is_listed_and_a_closed_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (c, s) = (cookie_of(&client), cookie_of(&server));
        let mut live = HashSet::new();
        tcp_cookies_here(&mut live).unwrap();
        assert!(live.contains(&c) && live.contains(&s), "{c} {s}");
        // Abortive close (SO_LINGER 0): no TIME_WAIT entry left behind.
        for sock in [&client, &server] {
            let l = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid linger struct for SO_LINGER.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&l as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
        }
        drop((client, server));
        let mut after = HashSet::new();
        tcp_cookies_here(&mut after).unwrap();
        assert!(!after.contains(&c) && !after.contains(&s));
    }
}
