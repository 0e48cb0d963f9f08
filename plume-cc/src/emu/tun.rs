//! TUN devices: one per namespace, opened from inside it (IFF_TUN, no packet
//! information header), so the emulator reads and writes raw IP datagrams.
//!
//! A TUN device lives as long as its file descriptor; nothing here configures
//! addresses (that is `ip`'s job in the parent module).

use std::os::fd::{FromRawFd as _, OwnedFd};

use super::{netns::NetNs, EmuError};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates the TUN device `dev` inside `ns` and returns its non-blocking fd.
pub fn open_tun(ns: &NetNs, dev: &str) -> Result<OwnedFd, EmuError> {
    let err = |source| EmuError::Tun {
        dev: dev.into(),
        ns: ns.name().into(),
        source,
    };
    if dev.len() >= libc::IFNAMSIZ {
        return Err(err(std::io::Error::other("device name too long")));
    }
    ns.run(|| {
        // SAFETY: plain open of a device node with a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..dev.len()].copy_from_slice(dev.as_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq mirrors.
        if unsafe { libc::ioctl(fd, TUNSETIFF, &mut req) } < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(owned)
    })?
}
