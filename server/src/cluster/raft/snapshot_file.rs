//! The snapshot file: the metadata image as of a log id, so the log before it can be purged.
//!
//! Layout: the 8-byte magic `SPATESNP`, a little-endian `u32` format version, then two
//! frames (see [`super::frame`]): the openraft snapshot meta as JSON (last log id, last
//! membership, snapshot id), and the image's own bytes
//! ([`ClusterImage::to_snapshot`]). It is replaced whole (see [`super::durable_file`]), so
//! unlike a log segment it never has a torn tail: any damage is an error.

use std::path::Path;

use spate_cluster::ClusterImage;

use super::durable_file::{self, Durability};
use super::error::StoreError;
use super::frame::{self, FrameRead};
use super::types::{Snapshot, SnapshotMeta};

/// The file's name in the metadata directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
const MAGIC: [u8; 8] = *b"SPATESNP";
/// Bumped when the layout changes; a newer file asks for an upgrade.
const FORMAT_VERSION: u32 = 1;
const PREAMBLE_BYTES: usize = MAGIC.len() + 4;
/// The meta holds a membership of a few nodes: kilobytes.
const META_BYTES_MAX: u32 = 1024 * 1024;
/// The image: ~150 B per partition in JSON, so a million partitions is ~150 MB. Far past
/// what a Spate cluster is sized for, while still bounding what a damaged length can ask.
pub const IMAGE_BYTES_MAX: u32 = 1024 * 1024 * 1024;

/// A snapshot as kept by the state machine: its meta and the image's bytes.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

impl StoredSnapshot {
    /// The snapshot as openraft hands it out (copies the image's bytes).
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(self.data.clone()),
        }
    }
}

/// The image offset a snapshot at `meta` must have: its last log index.
pub fn expected_offset(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.map_or(0, |id| id.index)
}

/// Replaces the snapshot file with `snapshot`, durably.
pub fn write(dir: &Path, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
    let meta = serde_json::to_vec(&snapshot.meta).map_err(|source| StoreError::Encode {
        what: "the snapshot meta",
        source,
    })?;
    if snapshot.data.len() > IMAGE_BYTES_MAX as usize {
        return Err(StoreError::TooLarge {
            size_bytes: snapshot.data.len() as u64,
            limit_bytes: u64::from(IMAGE_BYTES_MAX),
        });
    }
    let mut contents = Vec::with_capacity(
        PREAMBLE_BYTES + 2 * frame::FRAME_HEADER_BYTES + meta.len() + snapshot.data.len(),
    );
    contents.extend_from_slice(&MAGIC);
    contents.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    frame::encode(&meta, &mut contents);
    frame::encode(&snapshot.data, &mut contents);
    durable_file::write_atomic(dir, SNAPSHOT_FILE, &contents, Durability::Durable)
}

/// Reads the snapshot file, if there is one, with the image it holds.
pub fn read(dir: &Path) -> Result<Option<(StoredSnapshot, ClusterImage)>, StoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let size_bytes_max = (PREAMBLE_BYTES + 2 * frame::FRAME_HEADER_BYTES) as u64
        + u64::from(META_BYTES_MAX)
        + u64::from(IMAGE_BYTES_MAX);
    let Some(bytes) = durable_file::read_bounded(&path, size_bytes_max)? else {
        return Ok(None);
    };
    let Some((magic, rest)) = bytes.split_first_chunk::<{ MAGIC.len() }>() else {
        return Err(StoreError::corrupt(&path, 0, "shorter than the header"));
    };
    let Some((version, _)) = rest.split_first_chunk::<4>() else {
        return Err(StoreError::corrupt(&path, 0, "shorter than the header"));
    };
    if *magic != MAGIC {
        return Err(StoreError::corrupt(
            &path,
            0,
            "not a Spate metadata snapshot",
        ));
    }
    let version = u32::from_le_bytes(*version);
    if version != FORMAT_VERSION {
        return Err(StoreError::Undecodable {
            path,
            offset: MAGIC.len() as u64,
            reason: format!("snapshot format {version}; this build reads {FORMAT_VERSION}"),
        });
    }
    let undecodable = |offset: usize, reason: String| StoreError::Undecodable {
        path: path.clone(),
        offset: offset as u64,
        reason,
    };
    let (meta_bytes, image_at) = frame_at(&path, &bytes, PREAMBLE_BYTES, META_BYTES_MAX)?;
    let (data, end) = frame_at(&path, &bytes, image_at, IMAGE_BYTES_MAX)?;
    if end != bytes.len() {
        return Err(StoreError::corrupt(
            &path,
            end as u64,
            "unexpected bytes after the image",
        ));
    }
    let meta: SnapshotMeta = serde_json::from_slice(meta_bytes)
        .map_err(|e| undecodable(PREAMBLE_BYTES, e.to_string()))?;
    let image =
        ClusterImage::from_snapshot(data).map_err(|e| undecodable(image_at, e.to_string()))?;
    if image.offset() != expected_offset(&meta) {
        return Err(StoreError::corrupt(
            &path,
            image_at as u64,
            format!(
                "the image is at offset {} but the snapshot claims {}",
                image.offset(),
                expected_offset(&meta)
            ),
        ));
    }
    let stored = StoredSnapshot {
        meta,
        data: data.to_vec(),
    };
    Ok(Some((stored, image)))
}

fn frame_at<'a>(
    path: &Path,
    bytes: &'a [u8],
    offset: usize,
    payload_bytes_max: u32,
) -> Result<(&'a [u8], usize), StoreError> {
    match frame::decode_at(bytes, offset, payload_bytes_max) {
        FrameRead::Valid { payload, end } => Ok((payload, end)),
        FrameRead::End => Err(StoreError::corrupt(path, offset as u64, "missing frame")),
        FrameRead::Bad(reason) => Err(StoreError::corrupt(path, offset as u64, reason)),
    }
}
