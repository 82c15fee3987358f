//! `subDir` templates such as `${pvc.metadata.namespace}/${pvc.metadata.name}`, expanded from the
//! claim metadata that the provisioner passes along (`--extra-create-metadata`), and
//! nfs-subdir-external-provisioner's `pathPattern` (`${.PVC.namespace}/${.PVC.labels.app}`).

use super::path::{SubDir, check_component, shorten};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Claim and volume names a template may use. Any of them may be unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `${pvc.metadata.name}`
    pub pvc_name: Option<String>,
    /// `${pvc.metadata.namespace}`
    pub pvc_namespace: Option<String>,
    /// `${pv.metadata.name}` (the CSI volume name)
    pub pv_name: Option<String>,
    /// `${pvc.metadata.labels.<key>}`; only the `provisioner` mode sees them.
    pub labels: BTreeMap<String, String>,
    /// `${pvc.metadata.annotations.<key>}`; only the `provisioner` mode sees them.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    PvcName,
    PvcNamespace,
    PvName,
    Label(String),
    Annotation(String),
}

/// Which syntax a template was written in, and so how missing values are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    /// `subDir`: every variable must have a value; each value is one plain path component.
    SubDir,
    /// `pathPattern`, as nfs-subdir-external-provisioner reads it: a missing value expands to
    /// nothing, values may hold `/`, empty components are dropped, and an empty result means
    /// "the default directory".
    PathPattern,
}

/// A parsed template; expanding it yields a [`SubDir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    syntax: Syntax,
}

impl Template {
    /// Parses a `subDir` template. Unknown variables and unterminated `${` are errors.
    pub fn parse(raw: &str) -> Result<Self> {
        Self::parse_as(raw, Syntax::SubDir, "subDir")
    }

    /// Parses nfs-subdir-external-provisioner's `pathPattern`: `${.PVC.name}`,
    /// `${.PVC.namespace}`, `${.PVC.labels.<key>}` and `${.PVC.annotations.<key>}`.
    pub fn parse_path_pattern(raw: &str) -> Result<Self> {
        Self::parse_as(raw, Syntax::PathPattern, "pathPattern")
    }

    fn parse_as(raw: &str, syntax: Syntax, param: &str) -> Result<Self> {
        if raw.len() > 1024 {
            return Err(Error::invalid(format!(
                "{param} template is longer than 1024 bytes"
            )));
        }
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                Error::invalid(format!("{param} {:?}: unterminated ${{", shorten(raw)))
            })?;
            let var = &after[..end];
            let piece = match syntax {
                Syntax::SubDir => sub_dir_variable(var),
                Syntax::PathPattern => path_pattern_variable(var),
            };
            pieces.push(piece.ok_or_else(|| {
                let known = match syntax {
                    Syntax::SubDir => {
                        "pvc.metadata.name, pvc.metadata.namespace, pv.metadata.name, \
                         pvc.metadata.labels.<key>, pvc.metadata.annotations.<key>"
                    }
                    Syntax::PathPattern => {
                        ".PVC.name, .PVC.namespace, .PVC.labels.<key>, .PVC.annotations.<key>"
                    }
                };
                Error::invalid(format!(
                    "{param}: unknown variable ${{{}}}; known: {known}",
                    shorten(var)
                ))
            })?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        let template = Template { pieces, syntax };
        // A template without variables must already be a valid path.
        if template.is_literal() {
            match syntax {
                Syntax::SubDir => SubDir::parse(raw).map(drop)?,
                Syntax::PathPattern => template.expand(&Metadata::default()).map(drop)?,
            }
        }
        Ok(template)
    }

    fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Expands the template. `subDir`: each substituted value must be a plain name (no `/`, no
    /// `..`). `pathPattern`: missing values are empty and empty components are dropped. Either
    /// way the whole result must be a valid [`SubDir`]; `Ok(None)` means a `pathPattern` expanded
    /// to nothing, so the volume gets the default directory.
    pub fn expand(&self, meta: &Metadata) -> Result<Option<SubDir>> {
        let lenient = self.syntax == Syntax::PathPattern;
        let mut out = String::new();
        for piece in &self.pieces {
            let (var, value) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::PvcName => ("pvc.metadata.name".into(), meta.pvc_name.as_ref()),
                Piece::PvcNamespace => {
                    ("pvc.metadata.namespace".into(), meta.pvc_namespace.as_ref())
                }
                Piece::PvName => ("pv.metadata.name".into(), meta.pv_name.as_ref()),
                Piece::Label(k) => (format!("pvc.metadata.labels.{k}"), meta.labels.get(k)),
                Piece::Annotation(k) => (
                    format!("pvc.metadata.annotations.{k}"),
                    meta.annotations.get(k),
                ),
            };
            match value {
                Some(v) if lenient => out.push_str(v),
                Some(v) => {
                    check_component(v)
                        .map_err(|why| Error::invalid(format!("value of ${{{var}}}: {why}")))?;
                    out.push_str(v);
                }
                None if lenient => {}
                None => {
                    return Err(Error::invalid(format!(
                        "subDir uses ${{{var}}} but the request does not carry it (run \
                         csi-provisioner with --extra-create-metadata; labels and annotations \
                         are only known to the provisioner mode)"
                    )));
                }
            }
        }
        if lenient {
            out = out
                .split('/')
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            if out.is_empty() {
                return Ok(None);
            }
        }
        SubDir::parse(&out).map(Some)
    }
}

fn sub_dir_variable(var: &str) -> Option<Piece> {
    Some(match var {
        "pvc.metadata.name" => Piece::PvcName,
        "pvc.metadata.namespace" => Piece::PvcNamespace,
        "pv.metadata.name" => Piece::PvName,
        _ => {
            if let Some(k) = var.strip_prefix("pvc.metadata.labels.") {
                Piece::Label(non_empty_key(k)?)
            } else {
                Piece::Annotation(non_empty_key(
                    var.strip_prefix("pvc.metadata.annotations.")?,
                )?)
            }
        }
    })
}

fn path_pattern_variable(var: &str) -> Option<Piece> {
    let var = var.trim().strip_prefix(".PVC.")?;
    Some(match var {
        "name" => Piece::PvcName,
        "namespace" => Piece::PvcNamespace,
        _ => {
            if let Some(k) = var.strip_prefix("labels.") {
                Piece::Label(non_empty_key(k)?)
            } else {
                Piece::Annotation(non_empty_key(var.strip_prefix("annotations.")?)?)
            }
        }
    })
}

fn non_empty_key(k: &str) -> Option<String> {
    (!k.is_empty()).then(|| k.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata {
            pvc_name: Some("data-redis-0".into()),
            pvc_namespace: Some("prod".into()),
            pv_name: Some("pvc-123".into()),
            labels: [("app".into(), "redis".into())].into(),
            annotations: [("nfs.io/storage-path".into(), "data/one".into())].into(),
        }
    }

    fn expand(t: &Template, m: &Metadata) -> Option<String> {
        t.expand(m).unwrap().map(|d| d.as_str().to_owned())
    }

    #[test]
    fn expands_labels_and_annotations() {
        let t = Template::parse("${pvc.metadata.labels.app}/${pvc.metadata.name}").unwrap();
        assert_eq!(expand(&t, &meta()).as_deref(), Some("redis/data-redis-0"));
        // In subDir a value is one plain component; a missing one is an error.
        let a = Template::parse("${pvc.metadata.annotations.nfs.io/storage-path}").unwrap();
        assert!(a.expand(&meta()).is_err(), "value with '/' accepted");
        let l = Template::parse("${pvc.metadata.labels.missing}").unwrap();
        assert!(l.expand(&meta()).is_err(), "missing label accepted");
        for bad in ["${pvc.metadata.labels.}", "${pvc.metadata.annotations.}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_pattern_reads_like_nfs_subdir_external_provisioner() {
        let p = |raw: &str| Template::parse_path_pattern(raw).unwrap();
        let m = meta();
        assert_eq!(
            expand(&p("${.PVC.namespace}-${.PVC.name}"), &m).as_deref(),
            Some("prod-data-redis-0")
        );
        assert_eq!(
            expand(
                &p("${.PVC.namespace}/${.PVC.annotations.nfs.io/storage-path}"),
                &m
            )
            .as_deref(),
            Some("prod/data/one"),
            "annotation values may hold '/'"
        );
        // A missing value is empty and empty components vanish, as with Go's filepath.Join.
        assert_eq!(
            expand(&p("/${.PVC.labels.tier}/${.PVC.labels.app}/"), &m).as_deref(),
            Some("redis")
        );
        assert_eq!(
            expand(&p("${.PVC.labels.tier}"), &m),
            None,
            "empty: default dir"
        );
        assert_eq!(
            expand(&p("static"), &Metadata::default()).as_deref(),
            Some("static")
        );
        for bad in [
            "${.PV.name}",
            "${pvc.metadata.name}",
            "${.PVC.labels.}",
            "${.PVC.name",
            "../x",
        ] {
            assert!(Template::parse_path_pattern(bad).is_err(), "{bad:?}");
        }
        // Values still cannot climb out of the share or into the driver's state.
        for hostile in ["..", "a/../../b", ".nfs-subdir-csi"] {
            let m = Metadata {
                labels: [("app".into(), hostile.into())].into(),
                ..meta()
            };
            assert!(
                p("${.PVC.labels.app}").expand(&m).is_err(),
                "{hostile:?} accepted"
            );
        }
    }

    #[test]
    fn expands_known_variables() {
        let t =
            Template::parse("${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}")
                .unwrap();
        assert_eq!(
            t.expand(&meta()).unwrap().unwrap().as_str(),
            "prod/data-redis-0-pvc-123"
        );
        assert_eq!(
            Template::parse("fixed/dir")
                .unwrap()
                .expand(&Metadata::default())
                .unwrap()
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
