//! The kernel's own view of a TCP socket (`getsockopt(TCP_INFO)`), read by the
//! process that owns the socket. Used to check, independently of our BPF
//! maps, that the datapath's limits are really obeyed by the sender.

use std::{io, os::fd::AsRawFd};

/// Leading part of the kernel's `struct tcp_info` (include/uapi/linux/tcp.h),
/// up to `tcpi_delivered_ce`; the kernel copies as much as we ask for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpInfo {
    /// TCP state (1 = ESTABLISHED).
    pub state: u8,
    /// Congestion-avoidance state.
    pub ca_state: u8,
    /// Unrecovered RTO timeouts.
    pub retransmits: u8,
    /// Zero-window probes.
    pub probes: u8,
    /// Backoff.
    pub backoff: u8,
    /// Options.
    pub options: u8,
    /// Window scales (4 bits each).
    pub wscale: u8,
    /// Flags (app-limited delivery rate, ...).
    pub flags: u8,
    /// Retransmission timeout, microseconds.
    pub rto_us: u32,
    /// Delayed-ACK timeout, microseconds.
    pub ato_us: u32,
    /// Sender MSS, bytes.
    pub snd_mss: u32,
    /// Receiver MSS, bytes.
    pub rcv_mss: u32,
    /// Unacknowledged segments.
    pub unacked: u32,
    /// SACKed segments.
    pub sacked: u32,
    /// Lost segments.
    pub lost: u32,
    /// Retransmitted segments in flight.
    pub retrans: u32,
    /// Unused by Linux.
    pub fackets: u32,
    /// ms since last data sent.
    pub last_data_sent_ms: u32,
    /// ms since last ACK sent.
    pub last_ack_sent_ms: u32,
    /// ms since last data received.
    pub last_data_recv_ms: u32,
    /// ms since last ACK received.
    pub last_ack_recv_ms: u32,
    /// Path MTU.
    pub pmtu: u32,
    /// Receive slow-start threshold.
    pub rcv_ssthresh: u32,
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// RTT variance, microseconds.
    pub rttvar_us: u32,
    /// Slow-start threshold, segments.
    pub snd_ssthresh: u32,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// Advertised MSS.
    pub advmss: u32,
    /// Reordering metric.
    pub reordering: u32,
    /// Receiver-side RTT estimate, microseconds.
    pub rcv_rtt_us: u32,
    /// Receive space.
    pub rcv_space: u32,
    /// Total retransmitted segments.
    pub total_retrans: u32,
    /// Current pacing rate, bytes/s.
    pub pacing_rate: u64,
    /// SO_MAX_PACING_RATE in force, bytes/s (u64::MAX = none).
    pub max_pacing_rate: u64,
    /// Bytes acknowledged.
    pub bytes_acked: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Bytes not yet sent.
    pub notsent_bytes: u32,
    /// Minimum RTT, microseconds.
    pub min_rtt_us: u32,
    /// Data segments received.
    pub data_segs_in: u32,
    /// Data segments sent.
    pub data_segs_out: u32,
    /// Delivery-rate estimate, bytes/s.
    pub delivery_rate: u64,
    /// Time busy sending, microseconds.
    pub busy_time_us: u64,
    /// Time limited by the receive window, microseconds.
    pub rwnd_limited_us: u64,
    /// Time limited by the send buffer, microseconds.
    pub sndbuf_limited_us: u64,
    /// Segments delivered.
    pub delivered: u32,
    /// Segments delivered with CE.
    pub delivered_ce: u32,
}

/// Reads TCP_INFO of a socket owned by this process.
pub fn tcp_info(socket: &impl AsRawFd) -> io::Result<TcpInfo> {
    let mut info = TcpInfo::default();
    let mut len = std::mem::size_of::<TcpInfo>() as libc::socklen_t;
    // SAFETY: `info` is a plain repr(C) struct of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut TcpInfo).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket cookie (`SO_COOKIE`), the key of the datapath's maps.
pub fn socket_cookie(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: an 8-byte out value.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the socket's congestion control (`TCP_CONGESTION`), e.g. `cubic`:
/// the kernel switches an established socket over and restarts the new
/// algorithm's state (`tcp_set_congestion_control`).
pub fn set_congestion(socket: &impl AsRawFd, name: &str) -> io::Result<()> {
    // SAFETY: a byte buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn layout_matches_the_kernel() {
        // tcpi_pacing_rate sits at byte 104 and tcpi_delivered at 192 in the uapi struct.
        assert_eq!(std::mem::offset_of!(TcpInfo, pacing_rate), 104);
        assert_eq!(std::mem::offset_of!(TcpInfo, delivered), 192);
    }

    #[test]
    fn reads_a_live_loopback_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let info = tcp_info(&client).unwrap();
        assert_eq!(info.state, 1, "ESTABLISHED");
        assert!(info.snd_cwnd >= 1);
        assert!(info.snd_mss > 0);
        let a = socket_cookie(&client).unwrap();
        let b = socket_cookie(&server).unwrap();
        assert!(a != 0 && b != 0 && a != b);
    }

    #[test]
    fn congestion_control_is_set_and_read_back_and_an_unknown_one_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_congestion(&client, "reno").unwrap();
        let mut name = [0u8; 16];
        let mut len = name.len() as libc::socklen_t;
        // SAFETY: a 16-byte out buffer.
        let rc = unsafe {
            libc::getsockopt(
                client.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                name.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        assert!(name.starts_with(b"reno\0"), "{name:?}");
        let e = set_congestion(&client, "no-such-cc").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }
}
