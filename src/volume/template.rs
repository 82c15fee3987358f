//! `subDir` templates such as `${pvc.metadata.namespace}/${pvc.metadata.name}`, expanded from the
//! claim metadata that the provisioner passes along (`--extra-create-metadata`).

use super::path::{SubDir, check_component, shorten};
use crate::error::{Error, Result};

/// Claim and volume names a template may use. Any of them may be unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `${pvc.metadata.name}`
    pub pvc_name: Option<String>,
    /// `${pvc.metadata.namespace}`
    pub pvc_namespace: Option<String>,
    /// `${pv.metadata.name}` (the CSI volume name)
    pub pv_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    PvcName,
    PvcNamespace,
    PvName,
}

/// A parsed template; expanding it yields a [`SubDir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a template. Unknown variables and unterminated `${` are errors.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.len() > 1024 {
            return Err(Error::invalid("subDir template is longer than 1024 bytes"));
        }
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                Error::invalid(format!("subDir {:?}: unterminated ${{", shorten(raw)))
            })?;
            pieces.push(match &after[..end] {
                "pvc.metadata.name" => Piece::PvcName,
                "pvc.metadata.namespace" => Piece::PvcNamespace,
                "pv.metadata.name" => Piece::PvName,
                other => {
                    return Err(Error::invalid(format!(
                        "subDir: unknown variable ${{{}}}; known: pvc.metadata.name, \
                         pvc.metadata.namespace, pv.metadata.name",
                        shorten(other)
                    )));
                }
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        let template = Template { pieces };
        // A template without variables must already be a valid path.
        if template.is_literal() {
            SubDir::parse(raw)?;
        }
        Ok(template)
    }

    fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Expands the template. Each substituted value must be a plain name (no `/`, no `..`), and
    /// the whole result must be a valid [`SubDir`].
    pub fn expand(&self, meta: &Metadata) -> Result<SubDir> {
        let mut out = String::new();
        for piece in &self.pieces {
            let (var, value) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::PvcName => ("pvc.metadata.name", &meta.pvc_name),
                Piece::PvcNamespace => ("pvc.metadata.namespace", &meta.pvc_namespace),
                Piece::PvName => ("pv.metadata.name", &meta.pv_name),
            };
            let value = value.as_deref().ok_or_else(|| {
                Error::invalid(format!(
                    "subDir uses ${{{var}}} but the request does not carry it \
                     (run csi-provisioner with --extra-create-metadata)"
                ))
            })?;
            check_component(value)
                .map_err(|why| Error::invalid(format!("value of ${{{var}}}: {why}")))?;
            out.push_str(value);
        }
        SubDir::parse(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata {
            pvc_name: Some("data-redis-0".into()),
            pvc_namespace: Some("prod".into()),
            pv_name: Some("pvc-123".into()),
        }
    }

    #[test]
    fn expands_known_variables() {
        let t =
            Template::parse("${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}")
                .unwrap();
        assert_eq!(
            t.expand(&meta()).unwrap().as_str(),
            "prod/data-redis-0-pvc-123"
        );
        assert_eq!(
            Template::parse("fixed/dir")
                .unwrap()
                .expand(&Metadata::default())
                .unwrap()
                .as_str(),
            "fixed/dir"
        );
    }

    #[test]
    fn refuses_bad_templates_and_values() {
        for bad in [
            "${pvc.metadata.labels}",
            "${pvc.metadata.name",
            "../x",
            "/abs",
            "a//b",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        let t = Template::parse("${pvc.metadata.name}").unwrap();
        assert!(
            t.expand(&Metadata::default()).is_err(),
            "missing value accepted"
        );
        for hostile in ["..", "a/b", ".", "x\0"] {
            let m = Metadata {
                pvc_name: Some(hostile.into()),
                ..meta()
            };
            assert!(t.expand(&m).is_err(), "{hostile:?} accepted");
        }
        // Text around variables cannot climb out either.
        let climb = Template::parse("../${pvc.metadata.name}").unwrap();
        assert!(climb.expand(&meta()).is_err());
    }
}
