//! A single-pass scanner over a data event's top-level JSON object, for the fast path
//! of [`classify`](super::classify).
//!
//! Hand-written rather than taken from a crate because what it must give is narrower
//! and stricter than any JSON crate's API: the top-level members with their raw text
//! (borrowed, as sent), and for each member whether its text lies in a subset whose
//! canonical form (`serde_json::Value` serialised: keys sorted, the last of duplicate
//! keys kept, no whitespace) can be written straight from the text, without building a
//! `Value`. The harness drain benchmark (BENCHMARKS.md) found `serde_json` tokenising
//! into `RawValue`s, then parsing and re-serialising the nested `payload` object, to
//! be most of the client's per-event cost; this scanner reads the text once and
//! allocates nothing but the member list.
//!
//! It never decides anything on its own: data it is not sure of (not an object, any
//! syntax error, a key with an escape, nesting deeper than [`MAX_DEPTH`]) makes
//! [`members`] give `None`, and the classifier then takes the exact `serde_json` path,
//! so errors and their messages are `serde_json`'s. What it accepts is valid JSON by
//! the same rules `serde_json` applies to a `RawValue` (strings: no control
//! characters, escapes `\" \\ \/ \b \f \n \r \t \uXXXX`; numbers: the JSON grammar;
//! whitespace: space, tab, CR, LF). A member is *simple* when its text has no
//! backslash and every number inside an object or array is an integer that
//! `serde_json` keeps as an integer (`0`, `-5`, at most `u64::MAX`, at least
//! `i64::MIN`; not `-0`, `1.0`, `1e3`), so that its canonical form is its text with
//! whitespace dropped and object keys sorted; members that are not simple are
//! canonicalised through `serde_json` as before.

/// Deepest nesting the scanner follows (deeper data takes the `serde_json` path,
/// which reads any depth without recursion).
pub const MAX_DEPTH: usize = 64;

/// One member of the top-level object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, as sent (it has no escapes).
    pub key: &'a str,
    /// The value's text, as sent, without surrounding whitespace.
    pub raw: &'a str,
    /// The value's canonical form is its text re-spaced with keys sorted (see the
    /// module doc).
    pub simple: bool,
}

/// The members of `data`, a JSON object, in the order sent (appended to `out`), or
/// `None` when `data` is not for the fast path (then `out` is left in any state).
pub fn members<'a>(data: &'a str, out: &mut Vec<Member<'a>>) -> Option<()> {
    let mut s = Scan::new(data);
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if !s.eat_if(b'}') {
        loop {
            s.ws();
            let k0 = s.i;
            if s.string()? {
                return None; // a key with an escape: serde_json decodes it
            }
            let key = &data[k0 + 1..s.i - 1];
            s.ws();
            s.eat(b':')?;
            s.ws();
            let v0 = s.i;
            let simple = s.value(0)?;
            out.push(Member {
                key,
                raw: &data[v0..s.i],
                simple,
            });
            s.ws();
            if s.eat_if(b'}') {
                break;
            }
            s.eat(b',')?;
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(())
}

/// Writes the canonical form of `raw`, the text of a simple value, to `out`.
pub fn canonical(raw: &str, out: &mut Vec<u8>) {
    let mut s = Scan::new(raw);
    match s.peek() {
        Some(b'{') => {
            // Up to 8 members sorted on the stack (the common case), more in a Vec.
            let mut small = [("", ""); 8];
            let mut n = 0;
            let mut spill: Vec<(&str, &str)> = Vec::new();
            s.for_each_member(|k, v| {
                if n < small.len() && spill.is_empty() {
                    small[n] = (k, v);
                    n += 1;
                } else {
                    if spill.is_empty() {
                        spill.extend_from_slice(&small[..n]);
                    }
                    spill.push((k, v));
                }
            });
            let entries = if spill.is_empty() {
                &mut small[..n]
            } else {
                &mut spill[..]
            };
            // Stable: the last of equal keys is last in its run, and wins.
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            let mut first = true;
            for (i, (k, v)) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|next| next.0 == *k) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.push(b'"');
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b"\":");
                canonical(v, out);
            }
            out.push(b'}');
        }
        Some(b'[') => {
            out.push(b'[');
            let mut first = true;
            s.for_each_element(|v| {
                if !first {
                    out.push(b',');
                }
                first = false;
                canonical(v, out);
            });
            out.push(b']');
        }
        _ => out.extend_from_slice(raw.as_bytes()),
    }
}

/// The text of what the JSON pointer `pointer` (`""` or `/…`) reaches inside `raw`,
/// the text of a simple value, as `serde_json::Value::pointer` would find it.
pub fn pointer<'a>(raw: &'a str, pointer: &str) -> Option<&'a str> {
    if pointer.is_empty() {
        return Some(raw);
    }
    let mut at = raw;
    for tok in pointer.strip_prefix('/')?.split('/') {
        let tok = if tok.contains('~') {
            std::borrow::Cow::Owned(tok.replace("~1", "/").replace("~0", "~"))
        } else {
            std::borrow::Cow::Borrowed(tok)
        };
        let mut s = Scan::new(at);
        at = match s.peek()? {
            b'{' => {
                let mut found = None;
                s.for_each_member(|k, v| {
                    if k == tok {
                        found = Some(v); // the last of duplicate keys wins
                    }
                });
                found?
            }
            b'[' => {
                // serde_json's array index: no sign, no leading zero.
                if tok.starts_with('+') || (tok.starts_with('0') && tok.len() != 1) {
                    return None;
                }
                let want: usize = tok.parse().ok()?;
                let (mut n, mut found) = (0usize, None);
                s.for_each_element(|v| {
                    if n == want {
                        found = Some(v);
                    }
                    n += 1;
                });
                found?
            }
            _ => return None,
        };
    }
    Some(at)
}

/// The cursor of a scan.
struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Scan<'a> {
        Scan {
            s,
            b: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.eat_if(c).then_some(())
    }

    fn eat_if(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    /// A string at the cursor (its opening quote): whether it has escapes.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// A number at the cursor: whether `serde_json` keeps it as an integer whose
    /// text is its canonical form.
    fn number(&mut self) -> Option<bool> {
        let start = self.i;
        let negative = self.eat_if(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.eat_if(b'.') {
            integer = false;
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return None; // a leading zero
        }
        let text = &self.s[start..self.i];
        Some(
            integer
                && if negative {
                    text != "-0" && text.parse::<i64>().is_ok()
                } else {
                    text.parse::<u64>().is_ok()
                },
        )
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<bool> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(true)
    }

    /// A value at the cursor, at `depth` containers deep: whether it is simple (a
    /// top-level number is judged like a nested one; the classifier hashes top-level
    /// scalars as sent anyway).
    fn value(&mut self, depth: usize) -> Option<bool> {
        match self.peek()? {
            b'"' => self.string().map(|escaped| !escaped),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            _ => None,
        }
    }

    /// An object or array at the cursor (`keyed`: an object).
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Option<bool> {
        self.i += 1;
        self.ws();
        if self.eat_if(close) {
            return Some(true);
        }
        let mut simple = true;
        loop {
            self.ws();
            if keyed {
                simple &= !self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            simple &= self.value(depth + 1)?;
            self.ws();
            if self.eat_if(close) {
                return Some(simple);
            }
            self.eat(b',')?;
        }
    }

    /// Calls `f` with each member (key, value text) of the valid object at the cursor.
    fn for_each_member(&mut self, mut f: impl FnMut(&'a str, &'a str)) {
        self.each(true, |k, v| f(k.unwrap_or_default(), v));
    }

    /// Calls `f` with each element's text of the valid array at the cursor.
    fn for_each_element(&mut self, mut f: impl FnMut(&'a str)) {
        self.each(false, |_, v| f(v));
    }

    fn each(&mut self, keyed: bool, mut f: impl FnMut(Option<&'a str>, &'a str)) {
        let close = if keyed { b'}' } else { b']' };
        self.i += 1;
        self.ws();
        if self.eat_if(close) {
            return;
        }
        loop {
            self.ws();
            let key = if keyed {
                let k0 = self.i;
                if self.string().is_none() {
                    return;
                }
                let key = &self.s[k0 + 1..self.i - 1];
                self.ws();
                self.i += 1; // ':'
                self.ws();
                Some(key)
            } else {
                None
            };
            let v0 = self.i;
            if self.value(0).is_none() {
                return;
            }
            f(key, &self.s[v0..self.i]);
            self.ws();
            if self.eat_if(close) || !self.eat_if(b',') {
                return;
            }
        }
    }
}
