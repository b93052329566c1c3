//! Sample statistics: mean, min, max and percentiles.

use serde::Serialize;

/// Samples of one quantity (latencies in cycles, hop counts, ...).
#[derive(Clone, Debug, Default)]
pub struct Samples {
    sum: f64,
    min: f64,
    max: f64,
    values: Vec<f64>,
}

/// Summary of a [`Samples`] set. Serialized with `null` for every figure
/// of an empty set (its fields hold 0 then: there is no mean of nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Mean (0 when empty).
    pub mean: f64,
    /// Minimum (0 when empty).
    pub min: f64,
    /// Maximum (0 when empty).
    pub max: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let some = |x: f64| (self.count > 0).then_some(x);
        let mut st = ser.serialize_struct("Summary", 7)?;
        st.serialize_field("count", &self.count)?;
        st.serialize_field("mean", &some(self.mean))?;
        st.serialize_field("min", &some(self.min))?;
        st.serialize_field("max", &some(self.max))?;
        st.serialize_field("p50", &some(self.p50))?;
        st.serialize_field("p95", &some(self.p95))?;
        st.serialize_field("p99", &some(self.p99))?;
        st.end()
    }
}

impl Samples {
    /// Add one sample.
    #[inline]
    pub fn add(&mut self, x: f64) {
        if self.values.is_empty() {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.sum += x;
        self.values.push(x);
    }
    /// Drop every sample.
    pub fn clear(&mut self) {
        *self = Samples::default();
    }
    /// Number of samples.
    pub fn count(&self) -> usize {
        self.values.len()
    }
    /// Sum of samples.
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// Mean, or 0 with no samples (as BookSim's `Stats::Average`).
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }
    /// Nearest-rank percentile `q` in [0, 100]; 0 with no samples.
    pub fn percentile(&self, q: f64) -> f64 {
        let mut v = self.values.clone();
        Self::pct_sorted(&mut v, q)
    }
    fn pct_sorted(v: &mut [f64], q: f64) -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    /// Full summary.
    pub fn summary(&self) -> Summary {
        let mut v = self.values.clone();
        Summary {
            count: v.len() as u64,
            mean: self.mean(),
            min: if v.is_empty() { 0.0 } else { self.min },
            max: if v.is_empty() { 0.0 } else { self.max },
            p50: Self::pct_sorted(&mut v, 50.0),
            p95: Self::pct_sorted(&mut v, 95.0),
            p99: Self::pct_sorted(&mut v, 99.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn summary_of_known_values() {
        let mut s = Samples::default();
        for x in 1..=100 {
            s.add(x as f64);
        }
        let m = s.summary();
        assert_eq!(m.count, 100);
        assert_eq!(m.mean, 50.5);
        assert_eq!((m.min, m.max), (1.0, 100.0));
        assert_eq!((m.p50, m.p95, m.p99), (50.0, 95.0, 99.0));
        assert_eq!(Samples::default().summary().mean, 0.0);
    }
}
