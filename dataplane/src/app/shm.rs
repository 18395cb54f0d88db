//! The OS-facing half of an application channel: the shared segment (a /dev/shm file
//! mapped with memmap2 on both sides) with bounds-checked byte and atomic access, and the
//! Unix SOCK_SEQPACKET socket operations that need raw descriptors (accept, SCM_RIGHTS).
//!
//! With `ring.rs` this is the only place of `app/` allowed `unsafe`. Everything here
//! treats the segment as bytes another process may change at any moment: reads copy out,
//! writes copy in, atomics are checked for bounds and alignment. It must not interpret
//! what it reads (the rings, arena and protocol do that, defensively).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

use memmap2::MmapRaw;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag};

/// Why a segment could not be made or mapped.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("creating {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("mapping the segment: {0}")]
    Map(io::Error),
    #[error("segment of {have} bytes is smaller than the {need} its geometry needs")]
    TooSmall { have: u64, need: u64 },
}

/// One mapped channel segment.
pub struct Segment {
    map: MmapRaw,
    len: usize,
    /// The /dev/shm name while it still exists (dataplane side only).
    path: Option<PathBuf>,
    file: File,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.len)
            .field("path", &self.path)
            .finish()
    }
}

impl Segment {
    /// Dataplane side: creates `path` (mode 0600, must not exist), sizes it and maps it.
    pub fn create(path: &Path, len: usize) -> Result<Segment, SegmentError> {
        let create = |e| SegmentError::Create {
            path: path.to_path_buf(),
            source: e,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(create)?;
        let mut seg = Segment {
            map: match file
                .set_len(len as u64)
                .and_then(|()| MmapRaw::map_raw(&file))
            {
                Ok(m) => m,
                Err(e) => {
                    let _ = std::fs::remove_file(path);
                    return Err(SegmentError::Map(e));
                }
            },
            len,
            path: Some(path.to_path_buf()),
            file,
        };
        if seg.map.len() < len {
            seg.unlink();
            return Err(SegmentError::TooSmall {
                have: seg.map.len() as u64,
                need: len as u64,
            });
        }
        Ok(seg)
    }

    /// Application side: maps a segment received as a descriptor; it must hold at least
    /// `need` bytes.
    pub fn from_fd(fd: OwnedFd, need: usize) -> Result<Segment, SegmentError> {
        let file = File::from(fd);
        let have = file.metadata().map_err(SegmentError::Map)?.len();
        if have < need as u64 {
            return Err(SegmentError::TooSmall {
                have,
                need: need as u64,
            });
        }
        let map = MmapRaw::map_raw(&file).map_err(SegmentError::Map)?;
        if map.len() < need {
            return Err(SegmentError::TooSmall {
                have: map.len() as u64,
                need: need as u64,
            });
        }
        Ok(Segment {
            map,
            len: need,
            path: None,
            file,
        })
    }

    /// The segment's usable length.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file, to send its descriptor.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Removes the /dev/shm name (the mapping and descriptors stay valid).
    pub fn unlink(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }

    fn check(&self, offset: usize, len: usize) -> Option<()> {
        (offset.checked_add(len)? <= self.len).then_some(())
    }

    /// The 32-bit atomic at `offset` (4-aligned, inside the segment), or `None`.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        self.check(offset, 4)?;
        if !offset.is_multiple_of(4) {
            return None;
        }
        // SAFETY: `offset..offset+4` is inside the mapping (checked above), the mapping's
        // base is page-aligned so the address is 4-aligned, the mapping lives as long as
        // `self` (the returned borrow), and AtomicU32 has the layout of u32 with every bit
        // pattern valid; the other process only ever accesses this word atomically too.
        Some(unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU32) })
    }

    /// Copies `out.len()` bytes from `offset`; `None` when out of bounds.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Option<()> {
        self.check(offset, out.len())?;
        // SAFETY: the source range is inside the live mapping (checked), the destination
        // is a distinct local buffer of the same length; the bytes may be changing under
        // us (the other process), which only makes the copy's content arbitrary — every
        // byte value is valid for u8 and the caller validates what it reads.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_mut_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        Some(())
    }

    /// Copies `data` to `offset`; `None` when out of bounds.
    pub fn write(&self, offset: usize, data: &[u8]) -> Option<()> {
        self.check(offset, data.len())?;
        // SAFETY: the destination range is inside the live, writable (MAP_SHARED, RW)
        // mapping (checked); `data` is a distinct local buffer. No Rust reference to the
        // mapped bytes exists (only raw copies and atomics), so writing through the raw
        // pointer does not alias any reference.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(offset),
                data.len(),
            );
        }
        Some(())
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Accepts one connection on a listening socket (close-on-exec, blocking).
pub fn accept(listener: &OwnedFd) -> nix::Result<OwnedFd> {
    let fd = socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one message with `fd` attached (SCM_RIGHTS).
pub fn send_with_fd(sock: &OwnedFd, msg: &[u8], fd: RawFd) -> nix::Result<usize> {
    let iov = [io::IoSlice::new(msg)];
    let fds = [fd];
    socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
}

/// Receives one message into `buf`; returns its length (0: peer closed), whether it was
/// truncated, and the first descriptor that came with it (any others are closed).
pub fn recv_with_fd(sock: &OwnedFd, buf: &mut [u8]) -> nix::Result<(usize, bool, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    let mut first = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these descriptors in this process for
                // this message; nothing else owns them. Each is owned exactly once here
                // (kept or dropped, which closes it).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, truncated, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> PathBuf {
        PathBuf::from(format!(
            "/dev/shm/flatrpc-test-{}-{tag}",
            std::process::id()
        ))
    }

    #[test]
    fn create_map_bounds_and_unlink() {
        let p = name("seg");
        let seg = Segment::create(&p, 8192).expect("create");
        let mode = std::fs::metadata(&p).expect("exists").permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        assert!(seg.write(8188, &[1, 2, 3, 4]).is_some());
        assert!(seg.write(8189, &[1, 2, 3, 4]).is_none());
        assert!(seg.write(usize::MAX - 1, &[1, 2]).is_none());
        let mut b = [0u8; 4];
        assert!(seg.read(8188, &mut b).is_some());
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(seg.atomic_u32(8188).is_some());
        assert!(seg.atomic_u32(8190).is_none());
        assert!(seg.atomic_u32(8192).is_none());
        // A second mapping of the same file sees the same bytes.
        let fd: OwnedFd = seg.file().try_clone().expect("dup").into();
        let other = Segment::from_fd(fd, 8192).expect("map");
        other.read(8188, &mut b).expect("read");
        assert_eq!(b, [1, 2, 3, 4]);
        let fd: OwnedFd = seg.file().try_clone().expect("dup").into();
        assert!(matches!(
            Segment::from_fd(fd, 8193),
            Err(SegmentError::TooSmall { .. })
        ));
        drop(seg);
        assert!(!p.exists(), "dropping the creator unlinks the name");
        // Creating over an existing name fails.
        std::fs::write(&p, b"x").expect("write");
        assert!(Segment::create(&p, 4096).is_err());
        let _ = std::fs::remove_file(&p);
    }
}
