//! Byte-exact Server-Sent Events on the wire: an HTTP/1.1 and HTTP/2 client connection
//! that gives the caller exact control over how many body bytes it reads and
//! how it closes, and an incremental WHATWG event-stream parser that reports
//! every frame with its byte offsets, raw bytes and violations.
#![deny(missing_docs)]

mod chunked;
mod coding;
mod conn;
mod h2conn;
mod parser;
pub mod tls;

pub use chunked::{ChunkError, ChunkedDecoder};
pub use coding::{ContentEncoding, MAX_DECODED_AHEAD};
pub use conn::{
    BaseUrl, BodyFraming, ConnectOptions, H2Cut, HttpVersion, Io, MAX_HEAD_BYTES, MAX_HEADERS,
    Protocol, RequestSpec, Response, Target, WireError, WireErrorKind, open, open_on, parse_url,
};
pub use h2conn::STREAM_WINDOW as H2_STREAM_WINDOW;
pub use h2conn::{H2Connection, SHARED_CONNECTION_WINDOW as H2_SHARED_CONNECTION_WINDOW};
pub use parser::{
    DEFAULT_MAX_BYTES, Event, Item, Mode, Parser, ParserConfig, Violation, ViolationKind,
};
pub use tls::{TlsConfig, TlsOptions, install_default_provider};
