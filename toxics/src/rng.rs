//! Seeded randomness. A (connection, toxic) decision is a pure function of the seed, the
//! connection's number and the toxic's name, so it does not depend on the order in which
//! toxics are evaluated or changed; per-chunk draws (jitter, slicer) come from a ChaCha
//! stream per (seed, connection, direction).

use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;

use crate::spec::Stream;

/// splitmix64's finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of a name (stable across runs and platforms).
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether connection `conn` gets the toxic named by `name_hash` at `toxicity`:
/// a uniform draw in [0, 1) below `toxicity` (so 0 never, 1 always).
pub(crate) fn decide(seed: u64, conn: u64, name_hash: u64, toxicity: f64) -> bool {
    let u = mix(mix(seed ^ mix(conn)) ^ name_hash) >> 11;
    (u as f64 / (1u64 << 53) as f64) < toxicity
}

/// The per-chunk RNG of one direction of one connection.
pub(crate) fn stream_rng(seed: u64, conn: u64, stream: Stream) -> ChaCha8Rng {
    let dir = match stream {
        Stream::Upstream => 1,
        Stream::Downstream => 2,
    };
    ChaCha8Rng::seed_from_u64(mix(mix(seed ^ mix(conn)) ^ dir))
}
