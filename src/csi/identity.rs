//! Identity service: who the plugin is, what it offers, and whether it is ready.

use super::pb::{self, identity_server::Identity, plugin_capability};
use tonic::{Request, Response, Status};

/// Identity service state.
#[derive(Clone, Debug)]
pub struct IdentityService {
    /// CSI driver name (`--drivername`).
    pub name: String,
    /// Whether this process serves the controller role (advertised as CONTROLLER_SERVICE).
    pub controller: bool,
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _req: Request<pb::GetPluginInfoRequest>,
    ) -> Result<Response<pb::GetPluginInfoResponse>, Status> {
        Ok(Response::new(pb::GetPluginInfoResponse {
            name: self.name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_owned(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<pb::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<pb::GetPluginCapabilitiesResponse>, Status> {
        use plugin_capability::{Service, Type, service::Type as ServiceType};
        let capabilities = self
            .controller
            .then(|| pb::PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: ServiceType::ControllerService as i32,
                })),
            })
            .into_iter()
            .collect();
        Ok(Response::new(pb::GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn probe(
        &self,
        _req: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeResponse>, Status> {
        Ok(Response::new(pb::ProbeResponse { ready: Some(true) }))
    }
}
