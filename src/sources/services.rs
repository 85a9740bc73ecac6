//! Services: which pools exist and how to advertise their origins.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Service;

use super::Source;
use crate::convert;
use origin_discovery_core::index::Index;
use origin_discovery_core::model::PoolId;
use origin_discovery_core::signals::Stamp;

/// Watches Services; a Service is a pool when labelled or named with `--service`.
#[derive(Debug)]
pub struct Services {
    /// Pools named explicitly with `--service`.
    pub explicit: HashSet<PoolId>,
}

fn id(svc: &Service) -> Option<PoolId> {
    Some(PoolId::new(
        svc.metadata.namespace.clone()?,
        svc.metadata.name.clone()?,
    ))
}

impl Source for Services {
    type K = Service;
    type Key = PoolId;
    const RESOURCE: &'static str = "services";

    fn key(&self, obj: &Service) -> Option<PoolId> {
        // Only pools are kept: a Service that stopped being one is reset away.
        convert::service_info(obj, &self.explicit).map(|i| i.pool)
    }

    fn apply(&mut self, index: &mut Index, obj: Service, stamp: Stamp) {
        match convert::service_info(&obj, &self.explicit) {
            Some(info) => index.apply_service(info, stamp),
            None => {
                if let Some(id) = id(&obj) {
                    index.delete_service(&id);
                }
            }
        }
    }

    fn delete(&mut self, index: &mut Index, obj: Service, _stamp: Stamp) {
        if let Some(id) = id(&obj) {
            index.delete_service(&id);
        }
    }

    fn reset(&mut self, index: &mut Index, keep: &HashSet<PoolId>, _stamp: Stamp) {
        index.reset_services(keep);
    }
}
