//! Bit rot on a stopped node's store: single-bit flips at seeded offsets
//! across the store's files (weighted by size, so most land in sled's log),
//! as a disk that returns wrong bytes would leave them. Used by the
//! damaged-store tests and the chaos harness's `bit-rot` nemesis.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One flipped bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flip {
    /// The file.
    pub file: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// The bit flipped (0-7).
    pub bit: u8,
}

/// Flip `flips` bits in the files under `store` (recursively), at offsets
/// drawn from `seed`. The same files and seed give the same flips.
pub fn flip_bits(store: &Path, flips: u32, seed: u64) -> io::Result<Vec<Flip>> {
    let mut files = Vec::new();
    walk(store, &mut files)?;
    files.sort();
    let sized: Vec<(PathBuf, u64)> = files
        .into_iter()
        .map(|f| std::fs::metadata(&f).map(|m| (f, m.len())))
        .collect::<io::Result<_>>()?;
    let total: u64 = sized.iter().map(|(_, len)| len).sum();
    if total == 0 {
        return Err(io::Error::other(format!(
            "{} holds no bytes to flip",
            store.display()
        )));
    }
    let mut rng = SplitMix(seed);
    let mut done = Vec::new();
    for _ in 0..flips {
        let mut at = rng.next() % total;
        let Some((file, _)) = sized.iter().find(|(_, len)| {
            let here = at < *len;
            if !here {
                at -= len;
            }
            here
        }) else {
            continue;
        };
        let bit = (rng.next() % 8) as u8;
        flip(file, at, bit)?;
        done.push(Flip {
            file: file.clone(),
            offset: at,
            bit,
        });
    }
    Ok(done)
}

fn flip(file: &Path, offset: u64, bit: u8) -> io::Result<()> {
    let f = File::options().read(true).write(true).open(file)?;
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, offset)?;
    byte[0] ^= 1 << bit;
    f.write_all_at(&byte, offset)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// splitmix64: a seeded stream without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_flips_the_same_bits_and_each_flip_changes_one() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::create_dir(dir.join("blobs")).unwrap();
            std::fs::write(dir.join("db"), vec![0u8; 4096]).unwrap();
            std::fs::write(dir.join("blobs").join("1"), vec![0u8; 100]).unwrap();
        }
        let fa = flip_bits(a.path(), 8, 7).unwrap();
        let fb = flip_bits(b.path(), 8, 7).unwrap();
        let rel = |f: &[Flip], root: &Path| -> Vec<(PathBuf, u64, u8)> {
            f.iter()
                .map(|x| {
                    (
                        x.file.strip_prefix(root).unwrap().to_owned(),
                        x.offset,
                        x.bit,
                    )
                })
                .collect()
        };
        assert_eq!(rel(&fa, a.path()), rel(&fb, b.path()));
        let ones: u32 = [a.path().join("db"), a.path().join("blobs").join("1")]
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .unwrap()
                    .iter()
                    .map(|b| b.count_ones())
                    .sum::<u32>()
            })
            .sum();
        assert!(
            (6..=8).contains(&ones),
            "8 flips, at most a pair on one bit: {ones}"
        );
        assert_ne!(flip_bits(a.path(), 8, 8).unwrap(), fa);
    }
}
