//! The data of one regular file: a clone (FICLONE) when the filesystem shares blocks, else
//! `copy_file_range` (server-side copy over NFSv4.2), else read/write; holes stay holes.

use rustix::fs::{SeekFrom, copy_file_range, ftruncate, ioctl_ficlone, seek};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Files up to this size that hold no holes (allocated blocks >= size) are copied as one segment.
const WHOLE_BELOW: u64 = 1 << 20;

/// True when a file of `size` bytes with `allocated` bytes of blocks surely has no holes, so asking
/// where they are (SEEK_DATA/SEEK_HOLE, a round trip each over NFSv4.2) can be skipped: small files
/// whose blocks cover their length. (Large ones may hold preallocated blocks past their end.)
pub fn dense(size: u64, allocated: u64) -> bool {
    size <= WHOLE_BELOW && allocated >= size
}

/// How a file's data was copied (the first method the filesystem allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// An empty file: nothing to copy.
    Empty,
    /// FICLONE: the blocks are shared (reflink), no data moved.
    Cloned,
    /// `copy_file_range`: the kernel (or the NFS server) copied the data.
    CopyRange,
    /// Plain reads and writes through this process.
    ReadWrite,
}

/// Copies `size` bytes of `src` into the empty file `dst`, keeping holes, and returns the method
/// used and the bytes of data moved (0 for a clone). `allocated` is what the source's stat says it
/// occupies: a file smaller on disk than its size whose holes SEEK_DATA cannot show (NFS before
/// v4.2 reports the whole file as data) is copied by reads and writes that skip zero blocks.
pub fn copy_data(
    src: &OwnedFd,
    dst: &OwnedFd,
    size: u64,
    allocated: u64,
) -> io::Result<(Method, u64)> {
    if size == 0 {
        return Ok((Method::Empty, 0));
    }
    if ioctl_ficlone(dst, src).is_ok() {
        return Ok((Method::Cloned, 0));
    }
    // A small file whose blocks cover its length is copied whole without asking where its holes
    // are: over NFSv4.2 each SEEK_DATA/SEEK_HOLE is a round trip to the server, twice per file.
    let segments = if dense(size, allocated) {
        vec![(0, size)]
    } else {
        segments(src, size)?
    };
    let hidden_holes = allocated < size && segments == [(0, size)];
    let mut method = if hidden_holes {
        Method::ReadWrite
    } else {
        Method::CopyRange
    };
    let mut moved = 0u64;
    let mut reached = 0u64;
    for &(start, end) in &segments {
        let n = copy_range(src, dst, start, end, &mut method)?;
        moved += n;
        reached = start + n;
    }
    // Sets the length, so a hole at the end (or a file that is all hole) keeps its size. Not
    // needed (a SETATTR round trip on NFS saved) when `copy_file_range` wrote up to the end: it
    // writes every byte it copies, while read/write leaves trailing zero blocks unwritten.
    if !(method == Method::CopyRange && reached == size) {
        ftruncate(dst, size)?;
    }
    Ok((method, moved))
}

/// The data segments of `src` below `size`, from SEEK_DATA/SEEK_HOLE; the whole file as one
/// segment when the filesystem cannot say.
fn segments(src: &OwnedFd, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(src, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // No data after pos: the rest is a hole.
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::OPNOTSUPP) if out.is_empty() => return Ok(vec![(0, size)]),
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = match seek(src, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        if end <= start {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// Copies `[start, end)` at the same offsets; falls back from `copy_file_range` to read/write
/// for good once the kernel refuses it.
fn copy_range(
    src: &OwnedFd,
    dst: &OwnedFd,
    start: u64,
    end: u64,
    method: &mut Method,
) -> io::Result<u64> {
    let mut pos = start;
    while pos < end && *method == Method::CopyRange {
        let (mut off_in, mut off_out) = (pos, pos);
        let want = usize::try_from(end - pos)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            // The file shrank under us: copy what there is.
            Ok(0) => return Ok(pos - start),
            Ok(n) => pos += n as u64,
            Err(
                Errno::XDEV
                | Errno::INVAL
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::BADF
                | Errno::PERM,
            ) if pos == start => *method = Method::ReadWrite,
            Err(e) => return Err(e.into()),
        }
    }
    if pos < end {
        pos = read_write(src, dst, pos, end)?;
    }
    Ok(pos - start)
}

/// Reads and writes `[pos, end)`; blocks of zeros are not written (the final `ftruncate` leaves
/// them as holes), so sparse files stay sparse even where the source cannot say where its holes are.
fn read_write(src: &OwnedFd, dst: &OwnedFd, mut pos: u64, end: u64) -> io::Result<u64> {
    let (src, dst) = (file_ref(src)?, file_ref(dst)?);
    let mut buf = vec![0u8; (1 << 20).min((end - pos) as usize)];
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let n = src.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        write_data_runs(&dst, &buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(pos)
}

/// Writes `buf` into `file` at `pos`, each run of 4 KiB blocks that hold data in one call; blocks
/// of zeros are not written, so they stay holes. Returns where the last written run ends, or
/// `None` when `buf` held only zeros. Used by the copy and by the snapshot archives' unpacker.
pub fn write_data_runs(file: &std::fs::File, buf: &[u8], pos: u64) -> io::Result<Option<u64>> {
    const BLOCK: usize = 4096;
    let (mut run, mut end): (Option<usize>, Option<u64>) = (None, None);
    for (i, chunk) in buf.chunks(BLOCK).enumerate() {
        match (chunk.iter().any(|b| *b != 0), run) {
            (true, None) => run = Some(i * BLOCK),
            (false, Some(from)) => {
                file.write_all_at(&buf[from..i * BLOCK], pos + from as u64)?;
                end = Some(pos + (i * BLOCK) as u64);
                run = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run {
        file.write_all_at(&buf[from..], pos + from as u64)?;
        end = Some(pos + buf.len() as u64);
    }
    Ok(end)
}

/// A `File` on a duplicate of `fd` (for positioned reads and writes).
fn file_ref(fd: &OwnedFd) -> io::Result<std::fs::File> {
    Ok(std::fs::File::from(fd.as_fd().try_clone_to_owned()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn copies_data_and_keeps_holes() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("src")).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(io::SeekFrom::Start(8 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
        f.set_len(16 << 20).unwrap();
        drop(f);
        let src: OwnedFd = std::fs::File::open(dir.path().join("src")).unwrap().into();
        let dst: OwnedFd = std::fs::File::create(dir.path().join("dst"))
            .unwrap()
            .into();
        let (_, moved) = copy_data(&src, &dst, 16 << 20, 8192).unwrap();
        let a = std::fs::read(dir.path().join("src")).unwrap();
        let b = std::fs::read(dir.path().join("dst")).unwrap();
        assert_eq!(a, b);
        assert!(moved < 1 << 20, "holes were copied as data: {moved} bytes");
    }

    #[test]
    fn read_write_leaves_zero_blocks_as_holes() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 4 << 20];
        data[100] = 1;
        data[3 << 20] = 2;
        std::fs::write(dir.path().join("src"), &data).unwrap();
        let src: OwnedFd = std::fs::File::open(dir.path().join("src")).unwrap().into();
        let dst: OwnedFd = std::fs::File::create(dir.path().join("dst"))
            .unwrap()
            .into();
        read_write(&src, &dst, 0, 4 << 20).unwrap();
        ftruncate(&dst, 4 << 20).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dst")).unwrap(), data);
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(dir.path().join("dst")).unwrap().blocks();
        assert!(
            blocks * 512 <= 256 << 10,
            "zero blocks written: {blocks} blocks"
        );
    }
}
