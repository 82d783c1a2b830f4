//! The label rules and bucket layouts every tenant shares ([`Rules`]), built once from
//! the `metrics` settings. Apart from the state they govern so that rendering (which
//! needs the served families and bucket bounds) and updating (which needs the limits)
//! read one definition.

use super::catalogue;
use super::{API_DURATION_BUCKETS, Group};
use crate::config::{MetricsSettings, Rewrite};

/// Label rules and bucket layouts shared by all tenants.
#[derive(Debug)]
pub struct Rules {
    pub(super) max_groups: usize,
    pub(super) max_pending_task_series: usize,
    pub(super) rewrites: Vec<Rewrite>,
    duration_buckets: Vec<f64>,
    queue_wait_buckets: Vec<f64>,
    max_return_attributes: usize,
    /// [`catalogue::DURATION`], or [`catalogue::DURATION_BY_GROUP`] without `status`.
    pub(super) duration: &'static catalogue::Family,
}

impl Rules {
    pub(super) fn new(settings: &MetricsSettings) -> Rules {
        Rules {
            max_groups: settings.max_groups.max(1),
            max_pending_task_series: settings.max_pending_task_series,
            rewrites: settings.task_name_rewrites.clone(),
            duration_buckets: settings.duration_buckets.clone(),
            queue_wait_buckets: settings.queue_wait_buckets.clone(),
            max_return_attributes: settings.max_return_attributes,
            duration: if settings.duration_by_status {
                &catalogue::DURATION
            } else {
                &catalogue::DURATION_BY_GROUP
            },
        }
    }

    /// The family served under `family`'s name: the configured duration histogram for
    /// [`catalogue::DURATION`], `family` itself otherwise.
    pub fn family(&self, family: &'static catalogue::Family) -> &'static catalogue::Family {
        if family.name == catalogue::DURATION.name {
            self.duration
        } else {
            family
        }
    }

    /// The tenant families as served, in catalogue order (see [`Rules::family`]).
    pub fn tenant_families(&self) -> impl Iterator<Item = &'static catalogue::Family> + '_ {
        catalogue::tenant_families().map(|f| self.family(f))
    }

    /// The duration histogram's label values after `tenant` for a task of `group`
    /// that ended with `status`.
    pub(super) fn duration_labels<'l>(&self, group: &'l Group, status: &'l str) -> Vec<&'l str> {
        let mut labels = vec![group.task_name.as_str(), group.source.as_str()];
        if self.duration.labels.contains(&"status") {
            labels.push(status);
        }
        labels
    }

    /// Distinct result attributes a group may have as labels of their own.
    pub fn max_return_attributes(&self) -> usize {
        self.max_return_attributes
    }

    /// The upper bounds of a histogram family's buckets (empty for other families).
    pub fn bounds(&self, buckets: catalogue::Buckets) -> &[f64] {
        match buckets {
            catalogue::Buckets::None => &[],
            catalogue::Buckets::TaskDuration => &self.duration_buckets,
            catalogue::Buckets::QueueWait => &self.queue_wait_buckets,
            catalogue::Buckets::ApiDuration => &API_DURATION_BUCKETS,
        }
    }
}
