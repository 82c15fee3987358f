//! Claim labels and annotations for `subDir` templates in CSI mode (csi-driver-nfs #771/#791):
//! csi-provisioner (`--extra-create-metadata`) passes only the claim's name and namespace, so a
//! template that reads `${pvc.metadata.labels.<key>}` makes the controller read the claim's
//! metadata through the Kubernetes API. The client is made once, on first need (a driver whose
//! classes never use labels needs no API access), and each read is bounded by the call's deadline.

use crate::error::{Error, Result};
use crate::volume::template::Metadata;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use std::time::Duration;

/// Reads claims for templates; holds the one Kubernetes client once made.
#[derive(Default)]
pub struct Claims {
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl Claims {
    /// Claims read through `client` (tests give a scripted one).
    pub fn with_client(client: kube::Client) -> Self {
        Claims {
            client: tokio::sync::OnceCell::new_with(Some(client)),
        }
    }

    /// Fills `meta`'s labels and annotations from the claim it names, within `deadline`.
    /// A claim name or namespace missing from the request, an unreachable API, or a claim that
    /// cannot be read are clear errors; nothing is made before this succeeds.
    pub async fn fill(&self, meta: &mut Metadata, deadline: Duration) -> Result<()> {
        let (Some(ns), Some(name)) = (meta.pvc_namespace.clone(), meta.pvc_name.clone()) else {
            return Err(Error::invalid(
                "subDir uses claim labels or annotations, but the request names no claim (run \
                 csi-provisioner with --extra-create-metadata)",
            ));
        };
        let read = async {
            let client = self
                .client
                .get_or_try_init(|| async {
                    kube::Client::try_default().await.map_err(|e| {
                        Error::FailedPrecondition(format!(
                            "subDir uses claim labels or annotations, but the Kubernetes API \
                             cannot be reached: {e}"
                        ))
                    })
                })
                .await?;
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            claims
                .get_metadata(&name)
                .await
                .map_err(|e| crate::provisioner::kube_error(format!("get claim {ns}/{name}"), e))
        };
        let claim = tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("reading claim {ns}/{name}"),
                millis: deadline.as_millis(),
            })??;
        meta.labels = claim.metadata.labels.unwrap_or_default();
        meta.annotations = claim.metadata.annotations.unwrap_or_default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioner::fixtures::{self, status};
    use serde_json::json;

    fn named(ns: &str, name: &str) -> Metadata {
        Metadata {
            pvc_name: Some(name.into()),
            pvc_namespace: Some(ns.into()),
            ..Metadata::default()
        }
    }

    #[tokio::test]
    async fn reads_labels_and_annotations_of_the_named_claim() {
        let (client, mut api) = fixtures::client();
        let claims = Claims::with_client(client);
        let path = "/api/v1/namespaces/prod/persistentvolumeclaims/data-0";
        let meta = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "data-0", "namespace": "prod",
                "labels": {"app": "redis"}, "annotations": {"team": "cache"}}});
        let server = tokio::spawn(async move {
            api.expect("GET", path, 200, meta).await;
            api.expect("GET", path, 404, status(404, "NotFound")).await;
        });
        let mut m = named("prod", "data-0");
        claims.fill(&mut m, Duration::from_secs(5)).await.unwrap();
        assert_eq!(m.labels.get("app").map(String::as_str), Some("redis"));
        assert_eq!(m.annotations.get("team").map(String::as_str), Some("cache"));
        let err = claims
            .fill(&mut named("prod", "data-0"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn no_claim_name_or_no_answer_in_time_are_clear_errors() {
        let (client, _api) = fixtures::client();
        let claims = Claims::with_client(client);
        let err = claims
            .fill(&mut Metadata::default(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--extra-create-metadata"), "{err}");
        // The scripted server never answers: the read ends with the call's deadline.
        let err = claims
            .fill(&mut named("ns", "c"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
