//! The frame every metadata file is made of: `[u32 length][u32 crc32c][payload]`, both
//! integers little-endian, the checksum over the payload alone.
//!
//! A frame is the unit of durability: a log segment is frames back to back, and the small
//! state files (vote, committed, purged) hold one each. Decoding never panics and never
//! trusts a length field beyond the bytes actually there; it reports *why* a frame is bad so
//! recovery can tell a torn tail from damage in the middle.

/// Bytes before a frame's payload: the length and the checksum.
pub const FRAME_HEADER_BYTES: usize = 8;

/// What decoding a frame at some offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameRead<'a> {
    /// A whole frame whose checksum matches; the next frame starts at `end`.
    Valid { payload: &'a [u8], end: usize },
    /// The offset is exactly the end of the buffer.
    End,
    /// Not a valid frame, and why.
    Bad(&'static str),
}

/// Appends one frame holding `payload` to `out`. The caller has checked the payload against
/// its limit, which is below `u32::MAX`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    debug_assert_eq!(
        length as usize,
        payload.len(),
        "payload over the frame limit"
    );
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the frame at `offset` in `buf`, accepting payloads of 1 to `payload_bytes_max`
/// bytes. A zero length is refused: every payload is non-empty, and a run of zero bytes (what
/// a file extended but never written can read back as) must not pass for empty frames.
pub fn decode_at(buf: &[u8], offset: usize, payload_bytes_max: u32) -> FrameRead<'_> {
    let Some(rest) = buf.get(offset..) else {
        return FrameRead::Bad("offset past the end of the file");
    };
    if rest.is_empty() {
        return FrameRead::End;
    }
    let Some((header, body)) = rest.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return FrameRead::Bad("frame header cut short");
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let length = u32::from_le_bytes([l0, l1, l2, l3]);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if length == 0 {
        return FrameRead::Bad("zero frame length");
    }
    if length > payload_bytes_max {
        return FrameRead::Bad("frame length over the limit");
    }
    let Some(payload) = body.get(..length as usize) else {
        return FrameRead::Bad("frame cut short");
    };
    if crc32c::crc32c(payload) != crc {
        return FrameRead::Bad("checksum mismatch");
    }
    FrameRead::Valid {
        payload,
        end: offset + FRAME_HEADER_BYTES + payload.len(),
    }
}

/// The first offset after `from` where a valid frame starts, if any.
///
/// Recovery asks this after a bad frame in the last segment: if a valid frame follows, the
/// bad one is damage in the middle of acknowledged data (a hard error), not a torn tail. A
/// torn tail is JSON text or zeros, whose length fields are refused before any checksum is
/// computed, so this scan is cheap in practice.
pub fn valid_frame_after(buf: &[u8], from: usize, payload_bytes_max: u32) -> Option<usize> {
    (from..buf.len()).find(|&offset| {
        matches!(
            decode_at(buf, offset, payload_bytes_max),
            FrameRead::Valid { .. }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1024;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    #[test]
    fn frames_round_trip_back_to_back() {
        let buf = frames(&[b"one", b"three"]);
        let FrameRead::Valid { payload, end } = decode_at(&buf, 0, MAX) else {
            panic!("first frame");
        };
        assert_eq!(payload, b"one");
        let FrameRead::Valid { payload, end } = decode_at(&buf, end, MAX) else {
            panic!("second frame");
        };
        assert_eq!(payload, b"three");
        assert_eq!(decode_at(&buf, end, MAX), FrameRead::End);
    }

    #[test]
    fn every_cut_of_a_frame_is_bad_not_valid() {
        let buf = frames(&[b"payload"]);
        for cut in 1..buf.len() {
            assert!(
                matches!(decode_at(&buf[..cut], 0, MAX), FrameRead::Bad(_)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum_and_the_next_frame_is_found() {
        let mut buf = frames(&[b"first", b"second"]);
        buf[FRAME_HEADER_BYTES + 1] ^= 0x40;
        assert_eq!(decode_at(&buf, 0, MAX), FrameRead::Bad("checksum mismatch"));
        let second = FRAME_HEADER_BYTES + b"first".len();
        assert_eq!(valid_frame_after(&buf, 1, MAX), Some(second));
    }

    #[test]
    fn zeros_and_huge_lengths_are_refused_without_reading_past_the_buffer() {
        assert_eq!(
            decode_at(&[0; 64], 0, MAX),
            FrameRead::Bad("zero frame length")
        );
        assert_eq!(valid_frame_after(&[0; 64], 0, MAX), None);
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode_at(&huge, 0, u32::MAX),
            FrameRead::Bad("frame cut short")
        );
        assert_eq!(
            decode_at(&huge, 0, MAX),
            FrameRead::Bad("frame length over the limit")
        );
    }
}
