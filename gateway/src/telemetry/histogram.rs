//! The analytics contract's latency buckets, read back: what range of microseconds each bucket
//! covers, and percentiles of a histogram of them. (The component does the bucketing; the contract
//! in `wit/analytics.wit` fixes the scheme, so aggregates from any node add up.)

use std::collections::BTreeMap;

/// The microseconds bucket `b` covers: from the first value, up to but not including the second.
pub fn bounds(bucket: u16) -> (u64, u64) {
    let b = u64::from(bucket);
    if b < 8 {
        return (b, b + 1);
    }
    let e = b / 8 + 2;
    let m = b % 8;
    let shift = (e - 3) as u32;
    let low = (8 + m).checked_shl(shift).unwrap_or(u64::MAX);
    let high = (9 + m).checked_shl(shift).unwrap_or(u64::MAX);
    (low, high)
}

/// The `p`-th percentile (0 < p ≤ 1) of `histogram`, in milliseconds: the middle of the bucket
/// that holds the ranked call. None for an empty histogram.
pub fn percentile_ms(histogram: &BTreeMap<u16, u64>, p: f64) -> Option<f64> {
    let total: u64 = histogram.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (&bucket, &count) in histogram {
        seen += count;
        if seen >= rank {
            let (low, high) = bounds(bucket);
            let middle = low as f64 + (high - low) as f64 / 2.0;
            return Some(middle.round() / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The contract's bucketing, as the bundled component does it.
    fn bucket(micros: u64) -> u16 {
        if micros < 8 {
            return micros as u16;
        }
        let e = 63 - u64::from(micros.leading_zeros());
        let m = (micros >> (e - 3)) & 7;
        (8 * (e - 2) + m) as u16
    }

    proptest! {
        #[test]
        fn every_value_lies_in_its_buckets_bounds(v in 0u64..(1 << 50)) {
            let (low, high) = bounds(bucket(v));
            prop_assert!(low <= v && v < high, "{v} not in [{low}, {high})");
            // At most 12.5 % wide (exact below 8).
            prop_assert!(v < 8 || (high - low) * 8 <= low);
        }
    }

    #[test]
    fn percentiles_pick_the_bucket_of_the_ranked_call() {
        let histogram: BTreeMap<u16, u64> = [(bucket(1000), 90), (bucket(50_000), 10)].into();
        assert_eq!(percentile_ms(&histogram, 0.5), Some(0.992));
        assert_eq!(percentile_ms(&histogram, 0.9), Some(0.992));
        let p95 = percentile_ms(&histogram, 0.95).unwrap();
        assert!((49.0..53.0).contains(&p95), "{p95}");
        assert_eq!(percentile_ms(&BTreeMap::new(), 0.5), None);
    }
}
