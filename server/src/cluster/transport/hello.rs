//! The first stream of every cluster connection: the dialer's Hello and the acceptor's
//! HelloAck. A pure codec: no I/O.
//!
//! TLS has already proven which certificate each side holds; the Hello says which node id the
//! dialer claims (the acceptor checks the certificate is for that id), which process it is
//! (the incarnation, so a restarted node's new connection replaces the old one at once), and
//! which cluster it belongs to. The HelloAck says the same of the acceptor.
//!
//! Layout (big-endian), the same for both kinds:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic: `SPH1` (Hello) or `SPA1` (HelloAck) |
//! | 4 | node id (i32) |
//! | 8 | incarnation (u64): random per process start |
//! | 1 | 1 if a cluster id follows, else 0 |
//! | 1 + n | cluster id length n, then n bytes of UTF-8 (only if present) |

/// Cluster ids are short (Kafka's are 22 characters); this bounds the Hello.
pub const CLUSTER_ID_BYTES_MAX: usize = u8::MAX as usize;
/// The largest Hello or HelloAck; the reader refuses anything longer.
pub const HELLO_BYTES_MAX: usize = 4 + 4 + 8 + 1 + 1 + CLUSTER_ID_BYTES_MAX;

const HELLO_MAGIC: [u8; 4] = *b"SPH1";
const ACK_MAGIC: [u8; 4] = *b"SPA1";

/// Which side of the exchange a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloKind {
    /// Sent by the dialer on its first stream.
    Hello,
    /// The acceptor's answer on that stream.
    Ack,
}

impl HelloKind {
    fn magic(self) -> [u8; 4] {
        match self {
            HelloKind::Hello => HELLO_MAGIC,
            HelloKind::Ack => ACK_MAGIC,
        }
    }
}

/// What a node says about itself when a connection opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: i32,
    /// Random per process start: a new value means the node restarted.
    pub incarnation: u64,
    /// The cluster the node belongs to, if it knows yet.
    pub cluster_id: Option<String>,
}

/// Why bytes are not a Hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error(
        "not a cluster {expected:?} (magic {found:02x?}); is the peer a different Spate version?"
    )]
    Magic { expected: HelloKind, found: Vec<u8> },
    #[error("the hello is truncated ({bytes} bytes)")]
    Truncated { bytes: usize },
    #[error("the hello has {extra} bytes after its end")]
    Trailing { extra: usize },
    #[error("the cluster id is {bytes} bytes, over the {CLUSTER_ID_BYTES_MAX}-byte limit")]
    ClusterIdTooLong { bytes: usize },
    #[error("the cluster id is not UTF-8")]
    ClusterIdNotUtf8,
    #[error("the cluster id flag is {0}, not 0 or 1")]
    Flag(u8),
}

impl Hello {
    pub fn encode(&self, kind: HelloKind) -> Result<Vec<u8>, HelloError> {
        let mut out = Vec::with_capacity(HELLO_BYTES_MAX);
        out.extend_from_slice(&kind.magic());
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        match &self.cluster_id {
            None => out.push(0),
            Some(id) => {
                let len = u8::try_from(id.len())
                    .map_err(|_| HelloError::ClusterIdTooLong { bytes: id.len() })?;
                out.push(1);
                out.push(len);
                out.extend_from_slice(id.as_bytes());
            }
        }
        debug_assert!(out.len() <= HELLO_BYTES_MAX);
        Ok(out)
    }

    pub fn decode(kind: HelloKind, bytes: &[u8]) -> Result<Hello, HelloError> {
        let mut reader = Reader { bytes, at: 0 };
        let magic = reader.take(4)?;
        if magic != kind.magic() {
            return Err(HelloError::Magic {
                expected: kind,
                found: magic.to_vec(),
            });
        }
        let node_id = i32::from_be_bytes(reader.array()?);
        let incarnation = u64::from_be_bytes(reader.array()?);
        let cluster_id = match reader.array::<1>()?[0] {
            0 => None,
            1 => {
                let len = usize::from(reader.array::<1>()?[0]);
                let id = std::str::from_utf8(reader.take(len)?)
                    .map_err(|_| HelloError::ClusterIdNotUtf8)?;
                Some(id.to_owned())
            }
            flag => return Err(HelloError::Flag(flag)),
        };
        if reader.at != bytes.len() {
            return Err(HelloError::Trailing {
                extra: bytes.len() - reader.at,
            });
        }
        Ok(Hello {
            node_id,
            incarnation,
            cluster_id,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], HelloError> {
        let end = self.at.saturating_add(len);
        let slice = self.bytes.get(self.at..end).ok_or(HelloError::Truncated {
            bytes: self.bytes.len(),
        })?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HelloError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster_id: Option<&str>) -> Hello {
        Hello {
            node_id: 3,
            incarnation: 0x0102_0304_0506_0708,
            cluster_id: cluster_id.map(str::to_owned),
        }
    }

    #[test]
    fn hello_round_trips_with_and_without_a_cluster_id() {
        for original in [
            hello(None),
            hello(Some("MkU3OEVBNTcwNTJENDM2Qk")),
            hello(Some("")),
        ] {
            for kind in [HelloKind::Hello, HelloKind::Ack] {
                let bytes = original.encode(kind).unwrap();
                assert!(bytes.len() <= HELLO_BYTES_MAX);
                assert_eq!(Hello::decode(kind, &bytes).unwrap(), original);
            }
        }
    }

    #[test]
    fn an_ack_is_not_a_hello() {
        let bytes = hello(None).encode(HelloKind::Ack).unwrap();
        assert!(matches!(
            Hello::decode(HelloKind::Hello, &bytes),
            Err(HelloError::Magic { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = hello(Some("cluster")).encode(HelloKind::Hello).unwrap();
        for len in 0..bytes.len() {
            assert!(
                Hello::decode(HelloKind::Hello, &bytes[..len]).is_err(),
                "{len}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = hello(None).encode(HelloKind::Hello).unwrap();
        bytes.push(0);
        assert_eq!(
            Hello::decode(HelloKind::Hello, &bytes),
            Err(HelloError::Trailing { extra: 1 })
        );
    }

    #[test]
    fn a_cluster_id_over_the_limit_is_refused_at_encode() {
        let long = "x".repeat(CLUSTER_ID_BYTES_MAX + 1);
        assert_eq!(
            hello(Some(&long)).encode(HelloKind::Hello),
            Err(HelloError::ClusterIdTooLong {
                bytes: CLUSTER_ID_BYTES_MAX + 1
            })
        );
        let longest = "x".repeat(CLUSTER_ID_BYTES_MAX);
        let bytes = hello(Some(&longest)).encode(HelloKind::Hello).unwrap();
        assert_eq!(bytes.len(), HELLO_BYTES_MAX);
    }

    #[test]
    fn a_bad_flag_or_non_utf8_cluster_id_is_refused() {
        let mut bytes = hello(None).encode(HelloKind::Hello).unwrap();
        *bytes.last_mut().unwrap() = 2;
        assert_eq!(
            Hello::decode(HelloKind::Hello, &bytes),
            Err(HelloError::Flag(2))
        );
        let mut bytes = hello(Some("ab")).encode(HelloKind::Hello).unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert_eq!(
            Hello::decode(HelloKind::Hello, &bytes),
            Err(HelloError::ClusterIdNotUtf8)
        );
    }
}
