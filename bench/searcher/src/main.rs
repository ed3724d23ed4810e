// SPDX-License-Identifier: GPL-2.0
//! The Figure-1 worker of `make bench` (bench/guest/bench.py starts one per
//! vCPU, pinned): searches `SIZE` bytes of an inherited descriptor end to
//! end, `CHUNK` bytes per `pread`, counting lines that start with a needle,
//! and prints `ns=<elapsed> bytes=<read> matches=<found>`.
//!
//! The descriptor is either `/dev/hotswap-file` attached to the file (an
//! FCM serves the reads) or the file itself (the Linux page cache does), so
//! the same loop measures both. Kept free of dependencies and of
//! allocation inside the loop: what it times is the reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::FromRawFd;
use std::process::ExitCode;
use std::time::Instant;

const NEEDLE: &[u8] = b"\nhotswap";

fn parse(args: &[String]) -> Option<(i32, u64, usize)> {
    match args {
        [_, fd, size, chunk] => Some((fd.parse().ok()?, size.parse().ok()?, chunk.parse().ok()?)),
        _ => None,
    }
}

/// Occurrences of [`NEEDLE`] that start inside `data`.
fn count_matches(data: &[u8]) -> u64 {
    let mut found = 0;
    let mut rest = data;
    while let Some(at) = rest.iter().position(|&b| b == NEEDLE[0]) {
        if rest[at..].starts_with(NEEDLE) {
            found += 1;
        }
        rest = &rest[at + 1..];
    }
    found
}

fn search(file: &File, size: u64, chunk: usize) -> std::io::Result<(u64, u64)> {
    let mut buf = vec![0u8; chunk];
    let (mut pos, mut matches) = (0u64, 0u64);
    while pos < size {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            break;
        }
        matches += count_matches(&buf[..n]);
        pos += n as u64;
    }
    Ok((pos, matches))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some((fd, size, chunk)) = parse(&args).filter(|&(fd, _, chunk)| fd >= 0 && chunk > 0)
    else {
        eprintln!(
            "usage: hotswap-search FD SIZE CHUNK (an open descriptor, bytes, bytes per read)"
        );
        return ExitCode::from(2);
    };
    // SAFETY: The parent handed this descriptor over for this process to
    // own; nothing else in the process uses it.
    let file = unsafe { File::from_raw_fd(fd) };
    let start = Instant::now();
    match search(&file, size, chunk) {
        Ok((bytes, matches)) => {
            println!(
                "ns={} bytes={bytes} matches={matches}",
                start.elapsed().as_nanos()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotswap-search: reading descriptor {fd}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_needles_and_ignores_near_misses() {
        assert_eq!(count_matches(b"\nhotswap\nhotswa\nhotswap!"), 2);
        assert_eq!(count_matches(b"hotswap"), 0);
        assert_eq!(count_matches(b""), 0);
    }
}
