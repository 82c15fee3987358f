//! Properties of the volume id, the path guard, page tokens, mount options and the volume context.

use crate::strategies::{good_option, good_server, good_sub_dir, hostile, path_like, text};
use crate::{assert_inside, check};
use nfs_subdir_csi::token;
use nfs_subdir_csi::volume::{
    OnDelete, ShareSpec, SubDir, VolumeContext, VolumeId, add_mount_options, check_mount_option,
};
use proptest::prelude::*;
use proptest::sample::select;

fn on_delete() -> impl Strategy<Value = OnDelete> {
    select(vec![OnDelete::Delete, OnDelete::Retain, OnDelete::Archive])
}

/// Valid volume ids, built from valid parts (odd characters included).
fn volume_id() -> impl Strategy<Value = VolumeId> {
    (
        proptest::option::of(good_server()),
        path_like(),
        good_sub_dir(),
        on_delete(),
        proptest::collection::vec(good_option(), 0..4),
    )
        .prop_filter_map("a valid share", |(server, share, sub, od, opts)| {
            let share = format!("/{share}");
            Some(VolumeId {
                share: ShareSpec::new(server.as_deref(), &share, opts).ok()?,
                sub_dir: SubDir::parse(&sub).ok()?,
                on_delete: od,
            })
        })
}

/// Id-shaped text: the v1 tag or a csi-driver-nfs shape with hostile fields.
fn id_like() -> BoxedStrategy<String> {
    let field = prop_oneof![2 => hostile(12), 1 => path_like(), 1 => Just("delete".to_owned())];
    prop_oneof![
        proptest::collection::vec(field.clone(), 0..8)
            .prop_map(|f| format!("nsc1#{}", f.join("#"))),
        proptest::collection::vec(field, 1..7).prop_map(|f| f.join("#")),
        text(64),
    ]
    .boxed()
}

#[test]
fn volume_ids_never_panic_and_accepted_ones_are_safe_and_stable() {
    check("volume_id_parse", id_like(), |raw| {
        if let Ok(id) = VolumeId::parse(&raw) {
            assert_inside(&id.sub_dir)?;
            prop_assert!(id.share.path.starts_with('/'));
            let again = VolumeId::parse(&id.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&id), "reprint of {:?}", raw);
        }
        Ok(())
    });
}

#[test]
fn volume_ids_round_trip() {
    check("volume_id_round_trip", volume_id(), |id| {
        let text = id.to_printed().expect("a valid id prints");
        prop_assert!(text.starts_with("nsc1#"));
        prop_assert_eq!(VolumeId::parse(&text).ok(), Some(id));
        Ok(())
    });
}

#[test]
fn volume_ids_too_long_to_parse_are_not_printed() {
    // Escaping can triple a field: the printer must never hand out an id the parser refuses.
    let long = (
        300usize..1024,
        select(vec!['#', '%', 'a']),
        proptest::collection::vec((1usize..=255, select(vec!['#', '%', 'b'])), 1..5),
        proptest::collection::vec(good_option(), 0..40),
    )
        .prop_filter_map("valid parts", |(share_len, c, parts, opts)| {
            let share = format!("/{}", c.to_string().repeat(share_len));
            let sub: Vec<String> = parts
                .iter()
                .map(|(n, c)| c.to_string().repeat(*n))
                .collect();
            Some(VolumeId {
                share: ShareSpec::new(Some("nfs"), &share, opts).ok()?,
                sub_dir: SubDir::parse(&sub.join("/")).ok()?,
                on_delete: OnDelete::Delete,
            })
        });
    check("volume_id_long", long, |id| {
        match id.to_printed() {
            Ok(text) => prop_assert_eq!(VolumeId::parse(&text).ok(), Some(id)),
            Err(e) => prop_assert!(e.to_string().contains("longer than"), "{e}"),
        }
        Ok(())
    });
}

#[test]
fn sub_dirs_never_escape_their_share() {
    check("sub_dir_parse", prop_oneof![path_like(), text(40)], |raw| {
        if let Ok(sub) = SubDir::parse(&raw) {
            assert_inside(&sub)?;
            prop_assert_eq!(sub.as_str(), raw.as_str());
        }
        Ok(())
    });
}

#[test]
fn share_paths_are_absolute_and_normalised() {
    check("share_path", (path_like(), text(16)), |(path, server)| {
        if let Ok(spec) = ShareSpec::new(Some(&server), &path, Vec::new()) {
            let p = spec.path.as_str();
            prop_assert!(
                p.starts_with('/') && !p.contains('\0') && !p.contains("//"),
                "{p:?}"
            );
            prop_assert!(p.split('/').all(|c| c != "." && c != ".."), "{p:?}");
            prop_assert!(p == "/" || !p.ends_with('/'), "{p:?}");
            let again = ShareSpec::new(spec.server.as_deref(), p, Vec::new()).ok();
            prop_assert_eq!(again, Some(spec.clone()), "normalising twice changes it");
        }
        Ok(())
    });
}

#[test]
fn page_tokens_round_trip_and_only_issued_ones_are_accepted() {
    check("token_round_trip", text(64), |key| {
        // The empty token is the first page; keys are never empty ("<share>\0<record>").
        let want = (!key.is_empty()).then(|| key.clone());
        prop_assert_eq!(token::decode(&token::encode(&key)).ok(), Some(want));
        Ok(())
    });
    let token_like = prop_oneof!["[0-9a-fA-F+ -]{0,16}", text(32)];
    check("token_decode", token_like, |raw| {
        if let Ok(Some(key)) = token::decode(&raw) {
            prop_assert_eq!(token::encode(&key), raw, "a token this driver never issues");
        }
        Ok(())
    });
}

#[test]
fn mount_options_stay_separate_options() {
    let list = proptest::collection::vec(prop_oneof![good_option(), hostile(10)], 0..6);
    check("mount_options", (list, any::<bool>()), |(parts, spaced)| {
        let sep = if spaced { " , " } else { "," };
        let mut opts = Vec::new();
        if add_mount_options(&mut opts, &parts.join(sep)).is_ok() {
            for o in &opts {
                prop_assert!(check_mount_option(o).is_ok(), "{o:?}");
                prop_assert!(
                    !o.chars()
                        .any(|c| c == ',' || c.is_whitespace() || c.is_control())
                );
            }
            let mut unique = opts.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), opts.len(), "an option twice");
            let mut again = Vec::new();
            add_mount_options(&mut again, &opts.join(",")).expect("reprint parses");
            prop_assert_eq!(again, opts);
        }
        Ok(())
    });
}

#[test]
fn volume_contexts_round_trip() {
    let ctx = volume_id().prop_map(|id| VolumeContext::of(&id));
    check("volume_context_round_trip", ctx, |ctx| {
        let mut expect = ctx.clone();
        let mut opts = Vec::new();
        add_mount_options(&mut opts, &ctx.share.mount_options.join(",")).unwrap();
        expect.share.mount_options = opts;
        let back = VolumeContext::from_pairs(ctx.to_pairs());
        prop_assert_eq!(back.ok(), Some(Some(expect)));
        Ok(())
    });
    let pairs = proptest::collection::vec(
        (
            select(vec![
                "share",
                "Share",
                "server",
                "subDir",
                "mountOptions",
                "x",
            ]),
            prop_oneof![path_like(), hostile(12)],
        ),
        0..5,
    );
    check("volume_context_parse", pairs, |pairs| {
        if let Ok(Some(ctx)) = VolumeContext::from_pairs(pairs.iter().cloned()) {
            if let Some(sub) = &ctx.sub_dir {
                assert_inside(sub)?;
            }
            prop_assert!(ctx.share.path.starts_with('/'));
        }
        Ok(())
    });
}

/// Reads a record key back: `%2F` is `/`, `%25` is `%`.
fn unescape_key(key: &str) -> Option<String> {
    let (mut out, mut rest) = (String::new(), key);
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push(match rest.get(i..i + 3)? {
            "%2F" => '/',
            "%25" => '%',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn record_keys_are_one_plain_file_name_per_directory() {
    let long = proptest::collection::vec("[a%/]{1,100}", 1..5).prop_map(|p| p.join("/"));
    check("record_key", prop_oneof![good_sub_dir(), long], |raw| {
        let Ok(sub) = SubDir::parse(&raw) else {
            return Ok(());
        };
        let key = nfs_subdir_csi::share::record::key(&sub);
        prop_assert!(!key.is_empty() && key.len() <= 255, "{key:?}");
        prop_assert!(
            !key.contains(['/', '\0']) && key != "." && key != "..",
            "{key:?}"
        );
        if !key.starts_with('~') {
            // Short keys read back to their directory, so two directories never share a record.
            prop_assert_eq!(unescape_key(&key), Some(raw));
        }
        Ok(())
    });
}
