//! The values of one tenant's series, keyed by catalogue family and label values:
//! counters, fractional sums, gauges and histograms, as plain (de)serialisable data,
//! with the exemplars (the last counted task) of the completion counter and of each
//! task histogram bucket, and the native buckets of the task histograms.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Rules;
use super::catalogue::{self as cat, Family, Kind};
use super::native::{self, Sparse};

/// The longest task id an exemplar carries: OpenMetrics limits an exemplar's label set
/// to 128 characters, and Prometheus drops an exemplar past it (`task_id` takes 7).
pub const MAX_EXEMPLAR_ID: usize = 120;

/// Where a sample came from: the last counted task of a series or bucket, shown by
/// Prometheus and Grafana as a point that links to the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// The task's id (the exemplar's `task_id` label).
    pub task_id: String,
    /// The observed value (the duration for a bucket, 1 for the counter).
    pub value: f64,
    /// When the task completed, Unix milliseconds (None without an end time).
    #[serde(default)]
    pub at_ms: Option<i64>,
}

impl Exemplar {
    /// The exemplar of a task, None when its id is too long for one (see
    /// [`MAX_EXEMPLAR_ID`]) or empty.
    pub fn of_task(task_id: &str, value: f64, at_ms: Option<i64>) -> Option<Exemplar> {
        let length = task_id.chars().count();
        (length > 0 && length <= MAX_EXEMPLAR_ID && value.is_finite()).then(|| Exemplar {
            task_id: task_id.to_string(),
            value,
            at_ms,
        })
    }
}

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
    /// The last exemplar per bucket (`counts.len()` entries), or empty when none was
    /// ever recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemplars: Vec<Option<Exemplar>>,
    /// The native buckets, for the families [`native::applies`] to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<Sparse>,
}

impl Histogram {
    fn empty(family: &Family, bounds: &[f64]) -> Histogram {
        Histogram {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
            exemplars: Vec::new(),
            native: native::applies(family).then(Sparse::default),
        }
    }

    pub(super) fn observe(&mut self, bounds: &[f64], value: f64, exemplar: Option<Exemplar>) {
        let bucket = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        if let Some(exemplar) = exemplar {
            self.exemplars.resize(self.counts.len(), None);
            if let Some(slot) = self.exemplars.get_mut(bucket) {
                *slot = Some(exemplar);
            }
        }
        if let Some(sparse) = &mut self.native {
            sparse.observe(value);
        }
        self.sum += value;
        self.count += 1;
    }

    /// The exemplar of bucket `index`, if one was recorded.
    pub fn exemplar(&self, index: usize) -> Option<&Exemplar> {
        self.exemplars.get(index).and_then(Option::as_ref)
    }

    /// Makes a resumed histogram consistent with `family`: exemplars one per bucket or
    /// none, and native buckets (when the family has them) that add up to the count,
    /// approximated from the classic buckets when they do not (an older state file).
    fn settle(&mut self, family: &Family, bounds: &[f64]) {
        if !self.exemplars.is_empty() && self.exemplars.len() != self.counts.len() {
            self.exemplars.clear();
        }
        if !native::applies(family) {
            self.native = None;
        } else if self.native.as_ref().is_none_or(|n| n.total() != self.count) {
            self.native = Some(Sparse::from_classic(bounds, &self.counts));
        }
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

/// The exemplars of one counter family's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exemplars(#[serde(with = "pairs")] pub BTreeMap<Labels, Exemplar>);

/// Every series of a tenant, by family name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Values {
    families: BTreeMap<String, Series>,
    /// The last counted task of counter series, by family name (histograms keep theirs
    /// per bucket).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    exemplars: BTreeMap<String, Exemplars>,
}

/// Which families changed: the exposition re-renders a tenant's pieces only for those.
/// Starts as "all" (new or resumed values). Not part of the [`Values`] (it is not
/// persisted, and equal values are equal whatever was rendered of them): every change
/// goes through a `Writer` that notes it, and the renderer keeps it with the pieces.
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

impl Changed {
    /// Nothing changed.
    pub fn none() -> Changed {
        Changed {
            all: false,
            families: BTreeSet::new(),
        }
    }

    /// Adds what changed in `other`.
    pub fn merge(&mut self, other: &Changed) {
        self.all |= other.all;
        if !self.all {
            self.families.extend(other.families.iter().copied());
        }
    }

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

    /// The exemplar of a counter series, if one was recorded.
    pub fn exemplar(&self, family: &Family, labels: &[String]) -> Option<&Exemplar> {
        self.exemplars.get(family.name)?.0.get(labels)
    }

    /// The value of one series.
    pub fn get(&self, family: &Family, labels: &[&str]) -> Option<&Value> {
        self.series(family)?.0.get(&key(labels))
    }

    /// Drops whatever does not fit the catalogue and the current buckets (a state file
    /// from another version or with other buckets, or tampered with): unknown families,
    /// wrong label counts, wrong value kinds, histograms with another bucket count.
    /// Returns the number of series dropped.
    pub fn sanitize(&mut self, rules: &Rules) -> usize {
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
            for value in series.0.values_mut() {
                if let Value::Histogram(h) = value {
                    h.settle(family, bounds);
                }
            }
            !series.0.is_empty()
        });
        let families = &self.families;
        self.exemplars.retain(|name, exemplars| {
            let series = families.get(name);
            exemplars.0.retain(|labels, exemplar| {
                series.is_some_and(|s| s.0.contains_key(labels))
                    && Exemplar::of_task(&exemplar.task_id, exemplar.value, exemplar.at_ms)
                        .is_some()
            });
            !exemplars.0.is_empty()
        });
        dropped
    }
}

/// The one way to change [`Values`]: each change notes its family in a [`Changed`], so
/// the exposition knows which pieces to write again.
pub(super) struct Writer<'a> {
    values: &'a mut Values,
    changed: &'a mut Changed,
}

impl<'a> Writer<'a> {
    /// Changes `values`, noting what changed in `changed`.
    pub(super) fn new(values: &'a mut Values, changed: &'a mut Changed) -> Writer<'a> {
        Writer { values, changed }
    }

    /// The value of one series (see [`Values::get`]).
    pub(super) fn get(&self, family: &Family, labels: &[&str]) -> Option<&Value> {
        self.values.get(family, labels)
    }

    /// Adds `n` to a counter and makes `exemplar` its last counted task.
    pub(super) fn add_with_exemplar(
        &mut self,
        family: &Family,
        labels: &[&str],
        n: u64,
        exemplar: Option<Exemplar>,
    ) {
        self.add(family, labels, n);
        if let Some(exemplar) = exemplar {
            self.values
                .exemplars
                .entry(family.name.to_string())
                .or_default()
                .0
                .insert(key(labels), exemplar);
        }
    }

    fn series_mut(&mut self, family: &Family) -> &mut BTreeMap<Labels, Value> {
        self.changed.families.insert(family.name);
        &mut self
            .values
            .families
            .entry(family.name.to_string())
            .or_default()
            .0
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

    pub(super) fn observe(
        &mut self,
        family: &Family,
        labels: &[&str],
        bounds: &[f64],
        value: f64,
        exemplar: Option<Exemplar>,
    ) {
        let slot = self
            .series_mut(family)
            .entry(key(labels))
            .or_insert_with(|| Value::Histogram(Histogram::empty(family, bounds)));
        match slot {
            Value::Histogram(h) => h.observe(bounds, value, exemplar),
            other => {
                let mut h = Histogram::empty(family, bounds);
                h.observe(bounds, value, exemplar);
                *other = Value::Histogram(h);
            }
        }
    }

    pub(super) fn touch_histogram(&mut self, family: &Family, labels: &[&str], bounds: &[f64]) {
        self.series_mut(family)
            .entry(key(labels))
            .or_insert_with(|| Value::Histogram(Histogram::empty(family, bounds)));
    }

    pub(super) fn clear(&mut self, family: &Family) {
        self.changed.families.insert(family.name);
        self.values.families.remove(family.name);
        self.values.exemplars.remove(family.name);
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
