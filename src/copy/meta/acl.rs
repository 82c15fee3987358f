//! NFSv4 ACLs as the Linux NFS client shows them (`system.nfs4_acl`, the XDR of the `acl`
//! attribute): which ones only restate a file's mode, so copying them is a wasted round trip.

/// The attribute name of an NFSv4 ACL on a Linux NFS mount.
pub const NFS4_ACL: &[u8] = b"system.nfs4_acl";

/// ACE types that only allow or deny access (not audit or alarm).
const ALLOW: u32 = 0;
const DENY: u32 = 1;
/// The only ACE flag kept by a mode-derived ACL: "the who is a group" (GROUP@ carries it).
const IDENTIFIER_GROUP: u32 = 0x40;

/// True when the XDR-encoded ACL `xdr` names no user or group (only `OWNER@`, `GROUP@`,
/// `EVERYONE@`), inherits nothing and only allows or denies: what a server derives from the mode
/// bits alone (Linux nfsd shows a file without a POSIX ACL that way). Setting the copy's mode makes
/// the same ACL. Anything unreadable counts as not restating the mode (it is copied).
pub fn restates_mode(xdr: &[u8]) -> bool {
    let mut r = Reader(xdr);
    let Some(count) = r.u32() else { return false };
    for _ in 0..count {
        let (Some(kind), Some(flag), Some(_mask), Some(who)) =
            (r.u32(), r.u32(), r.u32(), r.opaque())
        else {
            return false;
        };
        let special = matches!(who, b"OWNER@" | b"GROUP@" | b"EVERYONE@");
        if !special || !matches!(kind, ALLOW | DENY) || flag & !IDENTIFIER_GROUP != 0 {
            return false;
        }
    }
    r.0.is_empty()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    /// An XDR variable-length opaque: length, bytes, padding to 4.
    fn opaque(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let padded = len.checked_add(3)? & !3;
        if padded > self.0.len() {
            return None;
        }
        let (data, rest) = self.0.split_at(padded);
        self.0 = rest;
        Some(&data[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ace(kind: u32, flag: u32, who: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for n in [kind, flag, 0x0012_0081, who.len() as u32] {
            v.extend(n.to_be_bytes());
        }
        v.extend(who.as_bytes());
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    fn acl(aces: &[Vec<u8>]) -> Vec<u8> {
        let mut v = (aces.len() as u32).to_be_bytes().to_vec();
        aces.iter().for_each(|a| v.extend(a));
        v
    }

    #[test]
    fn a_mode_derived_acl_restates_the_mode() {
        let x = acl(&[
            ace(ALLOW, 0, "OWNER@"),
            ace(DENY, IDENTIFIER_GROUP, "GROUP@"),
            ace(ALLOW, IDENTIFIER_GROUP, "GROUP@"),
            ace(ALLOW, 0, "EVERYONE@"),
        ]);
        assert!(restates_mode(&x));
        assert!(restates_mode(&acl(&[])));
    }

    #[test]
    fn named_inherited_audit_or_malformed_acls_are_copied() {
        assert!(!restates_mode(&acl(&[ace(ALLOW, 0, "1000")])));
        assert!(!restates_mode(&acl(&[ace(ALLOW, 0, "alice@example.com")])));
        assert!(
            !restates_mode(&acl(&[ace(ALLOW, 0x3, "OWNER@")])),
            "inherits"
        );
        assert!(!restates_mode(&acl(&[ace(2, 0, "EVERYONE@")])), "audit");
        let x = acl(&[ace(ALLOW, 0, "OWNER@")]);
        assert!(!restates_mode(&x[..x.len() - 1]), "truncated");
        let mut extra = x.clone();
        extra.extend([0, 0, 0, 0]);
        assert!(!restates_mode(&extra), "trailing bytes");
        assert!(
            !restates_mode(&(u32::MAX).to_be_bytes()),
            "count beyond the data"
        );
        assert!(!restates_mode(b""));
    }
}
