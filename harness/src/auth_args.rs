//! The `--header 'K: V'` flag of `sse-harness run`: headers sent on every request to
//! the target, streams (through `sse-wire`) and publishes (through reqwest) alike, for
//! deployments that authenticate by an API key or a cookie. Their values are secrets:
//! never printed (the replay command shows `***`, clap hides the variable's value).

use clap::Args;

/// Extra request headers.
#[derive(Args, Clone, Debug, Default)]
pub struct AuthArgs {
    /// A header for every request to the target, `'Name: value'` (e.g. an API key or
    /// `Cookie: session=…`); repeatable. Its value is never printed.
    #[arg(
        long = "header",
        value_name = "'K: V'",
        value_parser = parse_header,
        env = "SSE_HARNESS_HEADER",
        hide_env_values = true
    )]
    pub headers: Vec<Header>,
}

/// One `Name: value` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: String,
    /// The value (a secret).
    pub value: String,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ***", self.name)
    }
}

impl AuthArgs {
    /// The headers as (name, value) pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    }
}

/// `Name: value`, the name an HTTP token, the value without line breaks.
fn parse_header(s: &str) -> Result<Header, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_owned())?;
    let name = name.trim();
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("{name:?} is not a header name"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the value of {name} has a line break"));
    }
    Ok(Header {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_never_show_their_value() {
        let h = parse_header("X-Api-Key:  s3cret ").unwrap();
        assert_eq!((h.name.as_str(), h.value.as_str()), ("X-Api-Key", "s3cret"));
        assert_eq!(format!("{h:?}"), "X-Api-Key: ***");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("X: a\r\nInjected: b").is_err());
    }
}
