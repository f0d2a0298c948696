//! Latencies in log-spaced buckets, so that a phase's memory does not grow with its length
//! (`--duration` allows a week at up to 10⁷ requests/s: a sample each would not fit).
//! Below 256 µs every microsecond has its own bucket; above, each power of two is cut into
//! 128, and a percentile is reported as its bucket's midpoint: within 1/256 (0.4 %) of the
//! true value. The maximum is kept exactly. Latencies up to a day fit in 4,000 buckets (32 KB).

/// Sub-buckets per power of two, as a power of two: 2⁷ = 128.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this (2·SUB) have a bucket each.
const EXACT: u64 = 2 * SUB;

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    // `shift` ≥ 1 puts v >> shift in SUB..2·SUB.
    let shift = 64 - v.leading_zeros() - SUB_BITS - 1;
    (EXACT + (u64::from(shift) - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The smallest and largest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, i);
    }
    let shift = (i - EXACT) / SUB + 1;
    let lo = ((i - EXACT) % SUB + SUB) << shift;
    (lo, lo + ((1 << shift) - 1))
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        let i = index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Buckets held: what the memory is, whatever the number of samples.
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }

    /// Nearest rank: the smallest sample with at least `p` % of the samples at or below it,
    /// as its bucket's midpoint (never above the exact maximum). 0 with no samples.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank.min(self.total) {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against exact nearest-rank percentiles of known data spanning 1 µs to ~17 min: within
    /// 0.4 % (exact below 256 µs), and the maximum exact.
    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let mut data: Vec<u64> = (0..200_000u64)
            .map(|i| 1 + (i * i * 7919) % 1_000_000_000 / (1 + i % 1000))
            .collect();
        let mut h = Histogram::default();
        for v in &data {
            h.record(*v);
        }
        data.sort_unstable();
        for p in [0.1, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let rank = ((p / 100.0) * data.len() as f64).ceil() as usize;
            let exact = data[rank - 1] as f64;
            let got = h.percentile(p) as f64;
            assert!(
                (got - exact).abs() <= exact / 256.0,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), *data.last().unwrap());
        let mut small = Histogram::default();
        (1..=255u64).for_each(|v| small.record(v));
        assert_eq!(
            (small.percentile(50.0), small.percentile(100.0)),
            (128, 255)
        );
        assert!(h.buckets() < 4_000, "{}", h.buckets());
    }

    #[test]
    fn every_value_falls_in_its_own_bucket() {
        for v in (0..5000).chain([u32::MAX as u64, u64::MAX / 3, u64::MAX]) {
            let (lo, hi) = bounds(index(v));
            assert!(lo <= v && v <= hi, "{v}: {lo}..={hi}");
        }
    }
}
