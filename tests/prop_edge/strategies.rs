//! Generators: hostile text built from the characters and pieces that matter to the parsers, mixed
//! with arbitrary Unicode and arbitrary bytes.

use proptest::prelude::*;
use proptest::sample::select;

/// Characters that parsers treat specially, plus control characters and odd Unicode.
const HOSTILE: &[char] = &[
    'a', 'b', 'Z', '0', '2', '3', '5', '.', '/', '#', '%', ',', '=', ' ', '$', '{', '}', '-', '_',
    ':', '[', ']', '+', '\0', '\n', '\r', '\t', '\x1b', '\u{7f}', '\u{85}', '\u{202e}', 'é', '💾',
];

/// Short strings over [`HOSTILE`].
pub fn hostile(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(HOSTILE), 0..max).prop_map(String::from_iter)
}

/// Hostile text, arbitrary Unicode, or arbitrary bytes read lossily.
pub fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        4 => hostile(max),
        1 => proptest::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        1 => proptest::collection::vec(any::<u8>(), 0..max)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
    .boxed()
}

/// Path-like text: components that matter to the path guard, joined by `/`.
pub fn path_like() -> BoxedStrategy<String> {
    let component = prop_oneof![
        3 => "[a-z0-9._-]{1,12}",
        1 => select(vec!["", ".", "..", "...", ".nfs-subdir-csi", "pvc-1", "a\0b", "%23", "#"])
            .prop_map(str::to_owned),
        1 => hostile(8),
        1 => Just("x".repeat(256)),
    ];
    (
        any::<bool>(),
        proptest::collection::vec(component, 1..6),
        any::<bool>(),
    )
        .prop_map(|(lead, parts, trail)| {
            let mut s = parts.join("/");
            if lead {
                s.insert(0, '/');
            }
            if trail {
                s.push('/');
            }
            s
        })
        .boxed()
}

/// A plain component a valid volume directory may have (including odd but legal names).
pub fn good_component() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{1,20}",
        "[a-z#%\n\r\x1b é]{1,10}",
        select(vec!["...", ".hidden", "%25", "#x", "pvc-5d1c"]).prop_map(str::to_owned),
    ]
    .prop_filter("not . or ..", |c| c != "." && c != "..")
}

/// A valid relative directory of 1–4 components, never starting with the state directory.
pub fn good_sub_dir() -> impl Strategy<Value = String> {
    proptest::collection::vec(good_component(), 1..4)
        .prop_map(|parts| parts.join("/"))
        .prop_filter("not the state dir", |s| {
            s.split('/').next() != Some(".nfs-subdir-csi")
        })
}

/// A valid mount option: no comma, whitespace or control character.
pub fn good_option() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "hard",
            "soft",
            "nfsvers=4.1",
            "vers=3",
            "nolock",
            "timeo=600",
            "ro"
        ])
        .prop_map(str::to_owned),
        "[a-z0-9=.#%:/_-]{1,16}",
    ]
}

/// A valid server: a host name, an IPv4 or a bracketed IPv6 address.
pub fn good_server() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z0-9-]{1,8}){0,3}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "\\[[0-9a-f:]{2,20}\\]",
    ]
}
