//! Percentiles and per-second counts for the benchmark's report.

use std::time::Duration;

/// The `p`-th percentile (0–100, nearest rank) of `values`; `None` if empty.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and max of `values`, formatted in milliseconds.
pub fn summary(values: &[Duration]) -> String {
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
    format!(
        "p50 {} | p99 {} | max {} (n = {})",
        ms(percentile(values, 50.0)),
        ms(percentile(values, 99.0)),
        ms(values.iter().max().copied()),
        values.len()
    )
}

/// How many of `offsets` fall in each `bucket`-long interval from zero:
/// element `i` counts offsets in `[i·bucket, (i+1)·bucket)`.
pub fn histogram(offsets: &[Duration], bucket: Duration) -> Vec<usize> {
    let mut counts = Vec::new();
    for offset in offsets {
        let i = (offset.as_nanos() / bucket.as_nanos().max(1)) as usize;
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_buckets() {
        let ms = |v: u64| Duration::from_millis(v);
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 50.0), Some(ms(50)));
        assert_eq!(percentile(&values, 99.0), Some(ms(99)));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(
            histogram(&[ms(10), ms(90), ms(120), ms(350)], ms(100)),
            vec![2, 1, 0, 1]
        );
    }
}
