//! Legal variations: choices a correct spine server may make differently from the
//! default, off by default, switched on only from the command line (`serve --variant
//! NAME`) or by an embedding harness through [`crate::Config`]. No client request can
//! turn one on: nothing reads a header, query or body to decide.
//!
//! Where a fault ([`crate::faults`]) must make the harness fail, a variant must not:
//! the harness is run against each one and must pass (`harness/tests/variants.rs`).
//! Each variant is a small hook at the place it belongs (`stream.rs`; the compression
//! layer of `gzip-flushed` in `lib.rs` and `compress.rs`), guarded by
//! `state.variants.has(Variant::X)`; grep the variant name to find it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// [`Variant::SmallReplayPages`]: rows per page read from the store.
pub const SMALL_PAGE_ROWS: usize = 3;
/// [`Variant::SlowConsumerClose`]: how far (in seqs) a stream that had caught up may
/// fall behind the head before it is closed as a slow consumer.
pub const SLOW_CLOSE_LAG: u64 = 1_000;
/// [`Variant::Comments`]: the comment line written before every frame.
pub const COMMENT_LINE: &[u8] = b": variant comment\n\n";

macro_rules! variants {
    ($($(#[doc = $doc:literal])+ $variant:ident => $name:literal,)+) => {
        /// One legal variation of the spine protocol's wire behaviour.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Variant {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Variant {
            /// Every variant.
            pub const ALL: &'static [Variant] = &[$(Variant::$variant,)+];

            /// The kebab-case name used on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $(Variant::$variant => $name,)+
                }
            }
        }
    };
}

variants! {
    /// Every line ends with CRLF instead of LF (the event-stream format allows CR, LF
    /// and CRLF).
    Crlf => "crlf",
    /// A comment line (`: …`, in a block of its own) comes before every frame after
    /// the `retry:` block.
    Comments => "comments",
    /// Every chunk written to a stream is split in two, flushed separately (the
    /// second half only after the body yielded once), so frames arrive in pieces.
    SplitWrites => "split-writes",
    /// A log stream that had caught up with the head and then falls more than
    /// [`SLOW_CLOSE_LAG`] seqs behind it is closed with `error {"code":"slow_consumer"}`
    /// and `connection_close {"reason":"slow_consumer"}` (spine §4.3), so that it
    /// resumes; its replay after the resume is served from the store.
    SlowConsumerClose => "slow-consumer-close",
    /// Replay and live pages hold [`SMALL_PAGE_ROWS`] rows instead of hundreds.
    SmallReplayPages => "small-replay-pages",
    /// Stream routes are compressed as the client's `Accept-Encoding` asks (gzip or
    /// deflate), the encoder sync-flushed after every chunk the stream writes, so each
    /// frame decodes as soon as it arrives (`crate::compress`). Legal: HTTP lets a
    /// server apply any content coding the client accepts, and a flushed one holds
    /// nothing back (unlike the `compressed-stream` fault, which never flushes).
    GzipFlushed => "gzip-flushed",
    /// Streams are labelled `Content-Type: text/event-stream; charset=utf-8`. Legal:
    /// the event stream is always UTF-8, and naming that charset changes nothing (only
    /// another charset is wrong).
    CharsetUtf8 => "charset-utf8",
    /// A task stream asked for with a cursor at or after its job's terminal event is
    /// answered `204 No Content` instead of `connection_open` and the terminal
    /// `connection_close` (spine v1.1 §4.1.2 allows either): HTML's way to tell an
    /// `EventSource` to stop reconnecting, so a bare browser stops for good.
    FinishedTask204 => "finished-task-204",
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A variant name that is not one of [`Variant::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown variant {name:?}; known: {known}")]
pub struct UnknownVariant {
    /// The name given.
    pub name: String,
    /// The known names, comma separated.
    pub known: String,
}

impl FromStr for Variant {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Variant, UnknownVariant> {
        Variant::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s)
            .ok_or_else(|| UnknownVariant {
                name: s.to_owned(),
                known: Variant::ALL
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The variants switched on for one server (empty by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantSet {
    on: BTreeSet<Variant>,
}

impl VariantSet {
    /// A set with the given variants on.
    pub fn new(variants: impl IntoIterator<Item = Variant>) -> VariantSet {
        VariantSet {
            on: variants.into_iter().collect(),
        }
    }

    /// Whether `variant` is on.
    pub fn has(&self, variant: Variant) -> bool {
        !self.on.is_empty() && self.on.contains(&variant)
    }

    /// Whether no variant is on.
    pub fn is_empty(&self) -> bool {
        self.on.is_empty()
    }

    /// The variants on, in [`Variant`] order.
    pub fn iter(&self) -> impl Iterator<Item = Variant> + '_ {
        self.on.iter().copied()
    }

    /// `chunk` as the wire variants write it: a comment block before every frame of a
    /// chunk that is not the stream's first (`first`: the `retry:` block), then CRLF
    /// line ends. The stream's own text never holds a CR or LF inside a line (its JSON
    /// is compact and escaped), so every LF is a line end.
    pub fn rewrite(&self, chunk: bytes::Bytes, first: bool) -> bytes::Bytes {
        let comments = self.has(Variant::Comments) && !first;
        let crlf = self.has(Variant::Crlf);
        if !comments && !crlf {
            return chunk;
        }
        let mut framed = Vec::with_capacity(chunk.len() + 64);
        if comments {
            framed.extend_from_slice(COMMENT_LINE);
            let mut rest: &[u8] = &chunk;
            while let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
                framed.extend_from_slice(&rest[..end + 2]);
                rest = &rest[end + 2..];
                if !rest.is_empty() {
                    framed.extend_from_slice(COMMENT_LINE);
                }
            }
            framed.extend_from_slice(rest);
        } else {
            framed.extend_from_slice(&chunk);
        }
        if crlf {
            let mut out = Vec::with_capacity(framed.len() + framed.len() / 16);
            for b in framed {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            framed = out;
        }
        bytes::Bytes::from(framed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_parses_from_its_unique_name_and_unknown_names_are_refused() {
        let mut seen = BTreeSet::new();
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), *v);
            assert!(seen.insert(v.name()), "duplicate name {}", v.name());
        }
        let err = "nope".parse::<Variant>().unwrap_err();
        assert!(err.to_string().contains("split-writes"), "{err}");
        assert!("CRLF".parse::<Variant>().is_err());
    }

    #[test]
    fn rewrite_adds_comment_blocks_between_frames_and_crlf_line_ends() {
        let chunk = bytes::Bytes::from_static(b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n");
        let none = VariantSet::default();
        assert_eq!(none.rewrite(chunk.clone(), false), chunk);
        let comments = VariantSet::new([Variant::Comments]);
        assert_eq!(
            &comments.rewrite(chunk.clone(), false)[..],
            b": variant comment\n\nevent: a\ndata: {}\n\n: variant comment\n\nevent: b\ndata: {}\n\n"
        );
        assert_eq!(
            comments.rewrite(chunk.clone(), true),
            chunk,
            "retry block first"
        );
        let both = VariantSet::new([Variant::Comments, Variant::Crlf]);
        let out = both.rewrite(bytes::Bytes::from_static(b"data: {}\n\n"), false);
        assert_eq!(&out[..], b": variant comment\r\n\r\ndata: {}\r\n\r\n");
    }
}
