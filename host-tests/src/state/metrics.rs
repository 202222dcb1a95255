//! The metrics store: counters, gauges and histograms by name, shared by all workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::abi::Status;
use crate::sync::lock;

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

#[derive(Debug)]
struct Metric {
    name: String,
    kind: MetricKind,
    value: i64,
    samples: Vec<u64>,
}

/// All metrics of a gateway, by name; ids are shared by all workers. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<MetricsState>>,
}

#[derive(Debug, Default)]
struct MetricsState {
    ids: HashMap<String, u32>,
    metrics: Vec<Metric>,
}

impl MetricsState {
    fn metric(&mut self, id: u32) -> Result<&mut Metric, Status> {
        let index = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
        self.metrics.get_mut(index).ok_or(Status::NotFound)
    }
}

impl Metrics {
    /// The value of a counter or gauge, or the number of samples of a histogram.
    pub fn value(&self, name: &str) -> Option<i64> {
        let state = lock(&self.inner);
        let id = *state.ids.get(name)?;
        let metric = state.metrics.get(id as usize - 1)?;
        Some(match metric.kind {
            MetricKind::Histogram => metric.samples.len() as i64,
            _ => metric.value,
        })
    }

    /// The kind of a defined metric.
    pub fn kind(&self, name: &str) -> Option<MetricKind> {
        let state = lock(&self.inner);
        let id = *state.ids.get(name)?;
        state.metrics.get(id as usize - 1).map(|m| m.kind)
    }

    /// The values recorded into a histogram, in order.
    pub fn samples(&self, name: &str) -> Option<Vec<u64>> {
        let state = lock(&self.inner);
        let id = *state.ids.get(name)?;
        state
            .metrics
            .get(id as usize - 1)
            .map(|m| m.samples.clone())
    }

    /// The names of every defined metric.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner)
            .metrics
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    pub(crate) fn define(&self, kind: MetricKind, name: &str) -> Result<u32, Status> {
        let mut state = lock(&self.inner);
        if let Some(&id) = state.ids.get(name) {
            let existing = state.metric(id)?.kind;
            return if existing == kind {
                Ok(id)
            } else {
                Err(Status::BadArgument)
            };
        }
        state.metrics.push(Metric {
            name: name.to_owned(),
            kind,
            value: 0,
            samples: Vec::new(),
        });
        let id = state.metrics.len() as u32;
        state.ids.insert(name.to_owned(), id);
        Ok(id)
    }

    pub(crate) fn increment(&self, id: u32, offset: i64) -> Result<(), Status> {
        let mut state = lock(&self.inner);
        let metric = state.metric(id)?;
        match metric.kind {
            MetricKind::Counter if offset > 0 => metric.value = metric.value.saturating_add(offset),
            MetricKind::Gauge => metric.value = metric.value.saturating_add(offset),
            _ => return Err(Status::BadArgument),
        }
        Ok(())
    }

    pub(crate) fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        let mut state = lock(&self.inner);
        let metric = state.metric(id)?;
        let signed = i64::try_from(value).unwrap_or(i64::MAX);
        match metric.kind {
            MetricKind::Counter => metric.value = metric.value.saturating_add(signed),
            MetricKind::Gauge => metric.value = signed,
            MetricKind::Histogram => metric.samples.push(value),
        }
        Ok(())
    }

    pub(crate) fn get(&self, id: u32) -> Result<u64, Status> {
        let mut state = lock(&self.inner);
        let metric = state.metric(id)?;
        match metric.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(metric.value as u64),
        }
    }
}
