//! `slicer`: cuts each chunk into pieces of about `average_size` bytes, waiting `delay`
//! microseconds after each piece (toxiproxy's `SlicerToxic`, the same recursive halving
//! with the split point moved by up to ±`size_variation`, drawn from the seeded RNG).

use serde::{Deserialize, Serialize};

use super::AttrError;

/// Splits writes into small pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// Average piece size, in bytes (1..=1,048,576).
    pub average_size: u64,
    /// Variation of a piece's size, in bytes (0..average_size).
    #[serde(default)]
    pub size_variation: u64,
    /// Wait after each piece, in microseconds (0..=10,000,000).
    #[serde(default)]
    pub delay: u64,
}

impl Slicer {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        if !(1..=1_048_576).contains(&self.average_size) {
            return Err(AttrError::new(
                "average_size",
                self.average_size,
                "1..=1048576 (bytes)",
            ));
        }
        if self.size_variation >= self.average_size {
            return Err(AttrError::new(
                "size_variation",
                self.size_variation,
                "0..average_size (bytes, smaller than average_size)",
            ));
        }
        if self.delay > 10_000_000 {
            return Err(AttrError::new(
                "delay",
                self.delay,
                "0..=10000000 (microseconds)",
            ));
        }
        Ok(())
    }

    /// The piece boundaries of a chunk of `len` bytes: ascending end offsets, the last
    /// one `len`. Iterative form of toxiproxy's recursive `chunk`.
    pub fn cut(&self, len: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        let avg = self.average_size as usize;
        let var = self.size_variation as usize;
        let mut ends = Vec::new();
        // Depth-first over (start, end) ranges, right half pushed first so the left
        // one comes out first.
        let mut stack = vec![(0usize, len)];
        while let Some((start, end)) = stack.pop() {
            if (end - start).saturating_sub(avg) <= var || end - start <= 1 {
                if end > start {
                    ends.push(end);
                }
                continue;
            }
            let mut mid = start + (end - start) / 2;
            if var > 0 {
                let shift = rng.random_range(0..2 * var) as isize - var as isize;
                mid = (mid as isize + shift).clamp(start as isize + 1, end as isize - 1) as usize;
            }
            stack.push((mid, end));
            stack.push((start, mid));
        }
        ends
    }
}
