//! `subDir` templates such as `${pvc.metadata.namespace}/${pvc.metadata.name}`, expanded from the
//! claim metadata that the provisioner passes along (`--extra-create-metadata`), and
//! nfs-subdir-external-provisioner's `pathPattern` (`${.PVC.namespace}/${.PVC.labels.app}`); any
//! variable may carry a fallback, `${pvc.metadata.labels.tier:-default}`, used when it is missing or
//! empty.

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
    /// `${pvc.metadata.labels.<key>}`: the provisioner mode has the claim; the CSI path reads it.
    pub labels: BTreeMap<String, String>,
    /// `${pvc.metadata.annotations.<key>}`, read the same way.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A variable and its `:-` fallback, used when the value is missing or empty.
    Var(Var, Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Var {
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
            let (var, fallback) = match after[..end].split_once(":-") {
                Some((var, fallback)) => (var, Some(fallback.to_owned())),
                None => (&after[..end], None),
            };
            if let Some(f) = fallback.as_deref().filter(|_| syntax == Syntax::SubDir) {
                check_component(f).map_err(|why| {
                    Error::invalid(format!("{param}: fallback of ${{{}}}: {why}", shorten(var)))
                })?;
            }
            let piece = match syntax {
                Syntax::SubDir => sub_dir_variable(var),
                Syntax::PathPattern => path_pattern_variable(var),
            };
            let piece = piece.map(|v| Piece::Var(v, fallback));
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

    /// True when the template reads the claim's labels or annotations, which only the claim
    /// itself has (the CSI path then reads it through the Kubernetes API).
    pub fn needs_claim(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(Var::Label(_) | Var::Annotation(_), _)))
    }

    /// Expands the template. `subDir`: each substituted value must be a plain name (no `/`, no
    /// `..`). `pathPattern`: missing values are empty and empty components are dropped. Either
    /// way the whole result must be a valid [`SubDir`]; `Ok(None)` means a `pathPattern` expanded
    /// to nothing, so the volume gets the default directory.
    pub fn expand(&self, meta: &Metadata) -> Result<Option<SubDir>> {
        let lenient = self.syntax == Syntax::PathPattern;
        let mut out = String::new();
        for piece in &self.pieces {
            let (var, fallback) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Var(var, fallback) => (var, fallback),
            };
            let (var, value) = match var {
                Var::PvcName => ("pvc.metadata.name".into(), meta.pvc_name.as_ref()),
                Var::PvcNamespace => ("pvc.metadata.namespace".into(), meta.pvc_namespace.as_ref()),
                Var::PvName => ("pv.metadata.name".into(), meta.pv_name.as_ref()),
                Var::Label(k) => (format!("pvc.metadata.labels.{k}"), meta.labels.get(k)),
                Var::Annotation(k) => (
                    format!("pvc.metadata.annotations.{k}"),
                    meta.annotations.get(k),
                ),
            };
            let value = value.filter(|v| !v.is_empty()).or(fallback.as_ref());
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
                        "subDir uses ${{{var}}} but it has no value and no fallback (write \
                         ${{{var}:-<default>}} for one; claim names need csi-provisioner's \
                         --extra-create-metadata)"
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

fn sub_dir_variable(var: &str) -> Option<Var> {
    Some(match var {
        "pvc.metadata.name" => Var::PvcName,
        "pvc.metadata.namespace" => Var::PvcNamespace,
        "pv.metadata.name" => Var::PvName,
        _ => {
            if let Some(k) = var.strip_prefix("pvc.metadata.labels.") {
                Var::Label(non_empty_key(k)?)
            } else {
                Var::Annotation(non_empty_key(
                    var.strip_prefix("pvc.metadata.annotations.")?,
                )?)
            }
        }
    })
}

fn path_pattern_variable(var: &str) -> Option<Var> {
    let var = var.trim().strip_prefix(".PVC.")?;
    Some(match var {
        "name" => Var::PvcName,
        "namespace" => Var::PvcNamespace,
        _ => {
            if let Some(k) = var.strip_prefix("labels.") {
                Var::Label(non_empty_key(k)?)
            } else {
                Var::Annotation(non_empty_key(var.strip_prefix("annotations.")?)?)
            }
        }
    })
}

fn non_empty_key(k: &str) -> Option<String> {
    (!k.is_empty()).then(|| k.to_owned())
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
