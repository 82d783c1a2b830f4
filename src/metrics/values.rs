//! The values of one tenant's series, keyed by catalogue family and label values:
//! counters, fractional sums, gauges and histograms, as plain (de)serialisable data.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Rules;
use super::catalogue::{self as cat, Family, Kind};

/// Buckets, sum and count of one histogram series. `counts` holds one non-cumulative
/// count per upper bound, plus the `+Inf` overflow last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); `bounds + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn empty(bounds: &[f64]) -> Histogram {
        Histogram {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub(super) fn observe(&mut self, bounds: &[f64], value: f64) {
        let bucket = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// A counter's count.
    Counter(u64),
    /// A counter that sums fractional amounts (task results); never negative.
    Sum(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's buckets.
    Histogram(Histogram),
}

/// Label values of a series, in catalogue order, without the leading `tenant`.
pub type Labels = Vec<String>;

/// The series of one family.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series(#[serde(with = "pairs")] pub BTreeMap<Labels, Value>);

/// Every series of a tenant, by family name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Values {
    families: BTreeMap<String, Series>,
    /// Families changed since the exposition last read them (not persisted).
    #[serde(skip)]
    changed: Changed,
}

/// Which families changed since [`Values::take_changed`]: the exposition re-renders a
/// tenant's text only for those. Starts as "all" (new or resumed values). Not part of
/// the values: equal values compare equal whatever was read of them.
#[derive(Debug, Clone)]
pub struct Changed {
    all: bool,
    families: BTreeSet<&'static str>,
}

impl Default for Changed {
    fn default() -> Self {
        Changed {
            all: true,
            families: BTreeSet::new(),
        }
    }
}

impl PartialEq for Changed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Changed {
    /// Whether `family` changed.
    pub fn contains(&self, family: &Family) -> bool {
        self.all || self.families.contains(family.name)
    }
}

fn key(labels: &[&str]) -> Labels {
    labels.iter().map(|s| (*s).to_string()).collect()
}

impl Values {
    /// The series of `family` (None when it has none).
    pub fn series(&self, family: &Family) -> Option<&Series> {
        self.families.get(family.name)
    }

    /// The value of one series.
    pub fn get(&self, family: &Family, labels: &[&str]) -> Option<&Value> {
        self.series(family)?.0.get(&key(labels))
    }

    fn series_mut(&mut self, family: &Family) -> &mut BTreeMap<Labels, Value> {
        self.changed.families.insert(family.name);
        &mut self.families.entry(family.name.to_string()).or_default().0
    }

    /// The families changed since the last call (all of them the first time).
    pub fn take_changed(&mut self) -> Changed {
        std::mem::replace(
            &mut self.changed,
            Changed {
                all: false,
                families: BTreeSet::new(),
            },
        )
    }

    pub(super) fn add(&mut self, family: &Family, labels: &[&str], n: u64) {
        let slot = self
            .series_mut(family)
            .entry(key(labels))
            .or_insert(Value::Counter(0));
        match slot {
            Value::Counter(c) => *c = c.saturating_add(n),
            other => *other = Value::Counter(n),
        }
    }

    pub(super) fn add_amount(&mut self, family: &Family, labels: &[&str], amount: f64) {
        if !(amount.is_finite() && amount >= 0.0) {
            return;
        }
        let slot = self
            .series_mut(family)
            .entry(key(labels))
            .or_insert(Value::Sum(0.0));
        match slot {
            Value::Sum(s) if (*s + amount).is_finite() => *s += amount,
            Value::Sum(_) => {}
            other => *other = Value::Sum(amount),
        }
    }

    pub(super) fn touch_counter(&mut self, family: &Family, labels: &[&str]) {
        self.add(family, labels, 0);
    }

    pub(super) fn set(&mut self, family: &Family, labels: &[&str], value: f64) {
        let value = if value.is_finite() { value } else { 0.0 };
        self.series_mut(family)
            .insert(key(labels), Value::Gauge(value));
    }

    pub(super) fn observe(&mut self, family: &Family, labels: &[&str], bounds: &[f64], value: f64) {
        let slot = self
            .series_mut(family)
            .entry(key(labels))
            .or_insert_with(|| Value::Histogram(Histogram::empty(bounds)));
        match slot {
            Value::Histogram(h) => h.observe(bounds, value),
            other => {
                let mut h = Histogram::empty(bounds);
                h.observe(bounds, value);
                *other = Value::Histogram(h);
            }
        }
    }

    pub(super) fn touch_histogram(&mut self, family: &Family, labels: &[&str], bounds: &[f64]) {
        self.series_mut(family)
            .entry(key(labels))
            .or_insert_with(|| Value::Histogram(Histogram::empty(bounds)));
    }

    pub(super) fn clear(&mut self, family: &Family) {
        self.changed.families.insert(family.name);
        self.families.remove(family.name);
    }

    /// Drops whatever does not fit the catalogue and the current buckets (a state file
    /// from another version or with other buckets, or tampered with): unknown families,
    /// wrong label counts, wrong value kinds, histograms with another bucket count.
    /// Returns the number of series dropped.
    pub fn sanitize(&mut self, rules: &Rules) -> usize {
        self.changed.all = true;
        let mut dropped = 0;
        self.families.retain(|name, series| {
            let Some(family) = cat::find(name)
                .filter(|f| f.scope == cat::Scope::Tenant)
                .map(|f| rules.family(f))
            else {
                dropped += series.0.len();
                return false;
            };
            let bounds = rules.bounds(family.buckets);
            let before = series.0.len();
            series.0.retain(|labels, value| {
                labels.len() + 1 == family.labels.len()
                    && match (family.kind, value) {
                        (Kind::Counter, Value::Counter(_)) => true,
                        (Kind::Counter, Value::Sum(s)) => s.is_finite() && *s >= 0.0,
                        (Kind::Gauge, Value::Gauge(v)) => v.is_finite(),
                        (Kind::Histogram, Value::Histogram(h)) => {
                            h.counts.len() == bounds.len() + 1
                                && h.sum.is_finite()
                                && h.counts.iter().try_fold(0u64, |a, c| a.checked_add(*c))
                                    == Some(h.count)
                        }
                        _ => false,
                    }
            });
            dropped += before - series.0.len();
            !series.0.is_empty()
        });
        dropped
    }
}

/// (De)serialises a map with non-string keys as a list of `[key, value]` pairs (JSON
/// object keys must be strings).
pub(super) mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
