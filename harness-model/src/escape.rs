//! Escaping of text that came from the target. Ids, event names, data, header values
//! and error bodies end up in findings, and findings end up on the user's terminal, in
//! CI logs, in Markdown and in JUnit XML; a hostile target must not be able to move the
//! cursor, recolour or clear the screen, forge log lines or break XML with them. Every
//! renderer passes such text through [`untrusted`] (HTML escapes markup on top).
//!
//! Written here rather than taken from a crate: the rule is four lines (keep printable
//! characters, spaces and nothing else) and the renderers need the exact same rule.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character (C0, DEL, C1: ESC, CR, LF, TAB, NUL, CSI, ...) and
/// every Unicode bidi or line/paragraph separator written as a visible `\u{..}` escape
/// (`\n`, `\r`, `\t` as themselves), so the text renders as one inert line. Backslashes
/// are kept as they are: escaping is for safety, not for reversibility.
pub fn untrusted(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}' // LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            untrusted("seq 42 ü"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escapes_cannot_reach_the_screen() {
        let hostile = "id\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nPASS\u{9b}31m\u{202e}x\u{0}";
        let e = untrusted(hostile);
        assert!(!e.chars().any(|c| c.is_control()), "{e}");
        assert_eq!(
            e,
            "id\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\r\\nPASS\\u{9b}31m\\u{202e}x\\u{0}"
        );
    }
}
