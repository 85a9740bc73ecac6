//! EndpointSlices: the cluster's own view of which endpoints serve.

use std::collections::HashSet;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::Source;
use crate::convert;
use origin_discovery_core::index::Index;
use origin_discovery_core::model::PoolId;
use origin_discovery_core::signals::Stamp;

/// Watches EndpointSlices carrying a `kubernetes.io/service-name` label.
#[derive(Debug, Default)]
pub struct EndpointSlices;

impl Source for EndpointSlices {
    type K = EndpointSlice;
    type Key = (PoolId, String);
    const RESOURCE: &'static str = "endpointslices";

    fn key(&self, obj: &EndpointSlice) -> Option<(PoolId, String)> {
        let s = convert::slice_info(obj)?;
        Some((s.service, s.name))
    }

    fn apply(&mut self, index: &mut Index, obj: EndpointSlice, stamp: Stamp) {
        if let Some(info) = convert::slice_info(&obj) {
            index.apply_slice(info, stamp);
        }
    }

    fn delete(&mut self, index: &mut Index, obj: EndpointSlice, stamp: Stamp) {
        if let Some((svc, name)) = self.key(&obj) {
            index.delete_slice(&svc, &name, stamp);
        }
    }

    fn reset(&mut self, index: &mut Index, keep: &HashSet<(PoolId, String)>, stamp: Stamp) {
        index.reset_slices(keep, stamp);
    }
}
