//! Mount options that arrive in a secret (the provisioner secret's `mountOptions`): they help the
//! controller reach a share, and are never printed — not into a volume id, a log line or a Debug
//! dump — and never make two shares different.

use super::add_mount_options;
use crate::error::Result;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Mount options from a secret. Every `SecretOptions` equals every other one and hashes to
/// nothing: a share is identified by its public description (server, path, public options), so
/// the working mount, the per-share lists and the locks stay one per share whichever calls carry
/// the secret. `Debug` shows only how many options there are.
#[derive(Clone, Default)]
pub struct SecretOptions(Vec<String>);

impl SecretOptions {
    /// Options of the comma-separated `texts`, each checked like any mount option; those already
    /// in `public` are left out.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>, public: &[String]) -> Result<Self> {
        let mut all = Vec::new();
        for text in texts {
            add_mount_options(&mut all, text)?;
        }
        all.retain(|o| !public.contains(o));
        Ok(SecretOptions(all))
    }

    /// The options, to hand to mount(2) and nothing else.
    pub fn reveal(&self) -> &[String] {
        &self.0
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretOptions(<{} hidden>)", self.0.len())
    }
}

impl PartialEq for SecretOptions {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SecretOptions {}

impl Hash for SecretOptions {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl PartialOrd for SecretOptions {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SecretOptions {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ShareSpec, SubDir, VolumeId};
    use super::*;

    fn spec() -> ShareSpec {
        ShareSpec::new(Some("nfs.example"), "/export", vec!["nfsvers=4.1".into()]).unwrap()
    }

    #[test]
    fn secret_options_reach_the_mount_and_nothing_printed() {
        let secret = SecretOptions::parse(
            ["timeo=613, nfsvers=4.1", "retrans=7"],
            &spec().mount_options,
        )
        .unwrap();
        let with = spec().with_secret_options(secret);
        assert_eq!(
            with.all_mount_options(),
            ["nfsvers=4.1", "timeo=613", "retrans=7"]
        );
        let id = VolumeId {
            share: with.clone(),
            sub_dir: SubDir::parse("pvc-1").unwrap(),
            on_delete: Default::default(),
        };
        let printed = id.to_printed().unwrap();
        let debug = format!("{with:?} {id:?} {with}");
        for text in [&printed, &debug] {
            assert!(
                !text.contains("timeo") && !text.contains("retrans"),
                "{text}"
            );
        }
        assert!(debug.contains("<2 hidden>"), "{debug}");
        // The same share with or without them: one working mount, one lock, one listing.
        assert_eq!(with, spec());
        let hash = |s: &ShareSpec| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&with), hash(&spec()));
        assert_eq!(
            VolumeId::parse(&printed).unwrap().share.all_mount_options(),
            ["nfsvers=4.1"]
        );
    }

    #[test]
    fn malformed_secret_options_are_refused() {
        assert!(SecretOptions::parse(["ro,bad\toption"], &[]).is_err());
        assert!(SecretOptions::parse(["a\nb"], &[]).is_err());
        assert!(SecretOptions::parse(["", " , "], &[]).unwrap().is_empty());
    }
}
