//! Batched map access (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_UPDATE_BATCH`,
//! kernel 5.6+): one system call for thousands of flows instead of two or
//! three per flow. aya 0.14 has no batch operations, so this small wrapper
//! issues the `bpf(2)` commands itself on the map's file descriptor.

use std::{io, mem::size_of, os::fd::AsRawFd};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: attr is a valid, fully initialised bpf_attr prefix of the given size;
    // the pointers inside point to buffers sized for `count` elements.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads every (u64 key, V) pair of a hash map in batches of `chunk`.
/// `V` must be the map's exact value type (plain old data).
pub fn lookup_all<V: Copy + Default>(
    map: &impl AsRawFd,
    chunk: usize,
    out: &mut Vec<(u64, V)>,
) -> io::Result<()> {
    // Size the buffers by the last read (plus room to grow), not by `chunk`:
    // zeroing a 4096-entry buffer every interval would cost more than one flow.
    let chunk = (out.len() + 64).min(chunk.max(1));
    out.clear();
    let mut keys = vec![0u64; chunk];
    let mut values = vec![V::default(); chunk];
    let mut cursor = [0u64; 1];
    let mut next = [0u64; 1];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { cursor.as_mut_ptr() as u64 },
            out_batch: next.as_mut_ptr() as u64,
            map_fd: map.as_raw_fd() as u32,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            ..BatchAttr::default()
        };
        let res = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = attr.count as usize;
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        match res {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            // A bucket larger than the chunk: retry with room for it.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && n == 0 => {
                let bigger = keys.len() * 2;
                keys.resize(bigger, 0);
                values.resize(bigger, V::default());
                continue;
            }
            Err(e) => return Err(e),
        }
        cursor = next;
        first = false;
    }
}

/// Writes (u64 key, V) pairs into a hash map in one call (BPF_ANY).
pub fn update_all<V: Copy>(map: &impl AsRawFd, keys: &[u64], values: &[V]) -> io::Result<usize> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    if keys.is_empty() {
        return Ok(0);
    }
    let mut attr = BatchAttr {
        map_fd: map.as_raw_fd() as u32,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        ..BatchAttr::default()
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    Ok(attr.count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layout_matches_the_kernel() {
        assert_eq!(size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::offset_of!(BatchAttr, keys), 16);
        assert_eq!(std::mem::offset_of!(BatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(BatchAttr, map_fd), 36);
        assert_eq!(std::mem::offset_of!(BatchAttr, elem_flags), 40);
    }
}
