//! What a handler hands back to the connection: nothing (acks=0 produce), a closed
//! connection, or a response frame made of encoded bytes and file slices.
//!
//! File slices are how Fetch stays zero-copy: the handler encodes every header around the
//! records, and the connection writes the records straight from the segment files. The
//! frame's size prefix is computed from the parts, so it is exact by construction.

use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

/// A file the connection can read from or `sendfile` from. The `Arc` keeps a segment alive
/// (and its descriptor open) while retention deletes it.
pub type SharedFile = Arc<dyn AsFd + Send + Sync>;

/// One piece of a response frame, written in order.
pub enum ResponsePart {
    Bytes(Bytes),
    File {
        file: SharedFile,
        position: u64,
        len: u32,
    },
}

impl ResponsePart {
    pub fn len_bytes(&self) -> usize {
        match self {
            ResponsePart::Bytes(b) => b.len(),
            ResponsePart::File { len, .. } => *len as usize,
        }
    }
}

/// What the connection does after a request was handled.
pub enum Outcome {
    /// Write this frame (the size prefix is the first part).
    Respond(Vec<ResponsePart>),
    /// Send nothing: Produce with acks=0.
    Silent,
    /// The request could not be parsed: close the connection after earlier responses.
    Close(String),
}

impl Outcome {
    /// A frame whose body is one encoded buffer (header + body, no size prefix yet).
    pub fn from_body(body: BytesMut) -> Outcome {
        Outcome::Respond(frame_parts(vec![ResponsePart::Bytes(body.freeze())]))
    }
}

/// Prepends the 4-byte size prefix to `parts`.
///
/// Response sizes are bounded by the fetch limits the handlers enforce (far below 2 GiB), so
/// the conversion cannot overflow; it saturates rather than wrapping if a bug ever made it.
pub fn frame_parts(mut parts: Vec<ResponsePart>) -> Vec<ResponsePart> {
    let total: usize = parts.iter().map(ResponsePart::len_bytes).sum();
    let size = i32::try_from(total).unwrap_or(i32::MAX);
    let mut prefix = BytesMut::with_capacity(4);
    prefix.put_i32(size);
    parts.insert(0, ResponsePart::Bytes(prefix.freeze()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_prefix_counts_bytes_and_file_slices() {
        let file: SharedFile = Arc::new(tempfile::tempfile().unwrap());
        let parts = frame_parts(vec![
            ResponsePart::Bytes(Bytes::from_static(b"abc")),
            ResponsePart::File {
                file,
                position: 7,
                len: 100,
            },
            ResponsePart::Bytes(Bytes::from_static(b"de")),
        ]);
        let ResponsePart::Bytes(prefix) = &parts[0] else {
            panic!("prefix must be bytes")
        };
        assert_eq!(prefix.as_ref(), 105i32.to_be_bytes());
        assert_eq!(parts.len(), 4);
    }
}
