//! The one random-number generator of the project: deterministic from a
//! seed, so a seed replays the same faults, metrics and test inputs.

/// A small deterministic generator (SplitMix64): enough for fault draws,
/// and it keeps a random-number crate out of the build.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    // Long because it lays out the whole simulated cloud from a scenario (nodes, flavors, instances, pools, volumes, services) in one place.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}
