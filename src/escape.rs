//! Escaping of user-supplied text before it reaches a gRPC error message, a log line or a
//! Kubernetes event: control characters (CR, LF, ESC, NUL, …) and Unicode line separators and
//! bidirectional overrides are written as `\n`, `\u{1b}`, …, so input cannot forge log lines,
//! drive a terminal or reorder what an operator reads. Everything else passes unchanged.

use std::borrow::Cow;
use std::fmt::{self, Write};
use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::{FormatFields, format};

/// True for the characters that are written escaped.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` with control characters escaped; borrowed when nothing needed escaping.
pub fn controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = EscapingWriter(&mut out).write_str(s);
    Cow::Owned(out)
}

/// Wraps a writer; every `write_str` goes through [`controls`]' escaping.
pub struct EscapingWriter<W>(pub W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(needs_escape) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                '\0' => self.0.write_str("\\0")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// The field formatter of the text log: every field value (of events and spans) is escaped, so a
/// volume id, parameter or path holding CR/LF cannot start a forged log line. Field names and
/// layout are those of tracing-subscriber's default formatter. (The JSON log escapes by itself.)
pub fn log_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(
        |w: &mut format::Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let name = field.name();
            if name == "message" {
                write!(EscapingWriter(w), "{value:?}")
            } else {
                write!(w, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
                write!(EscapingWriter(w), "{value:?}")
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_or_hide_text() {
        assert_eq!(
            controls("a\r\nINFO forged\x1b[31m\0\u{2028}\u{202e}z\t"),
            "a\\r\\nINFO forged\\u{1b}[31m\\0\\u{2028}\\u{202e}z\\t"
        );
        assert!(matches!(
            controls("/srv/share é 💾 \"q\""),
            Cow::Borrowed(_)
        ));
        let mut out = String::new();
        let line = "x\ny";
        write!(EscapingWriter(&mut out), "{line}|{}", 5).unwrap();
        assert_eq!(out, "x\\ny|5");
    }
}
