//! Fuzzes the `__consumer_offsets` record codec: arbitrary bytes as a key and an optional
//! value. Decoding must never panic, and whatever decodes must be storable unchanged and
//! survive its own encoding: decode(encode(decode(x))) == decode(x).

#![no_main]

use spate_coordinator::records::Record;

/// Bit of the control prefix that makes the value a tombstone.
const TOMBSTONE_BIT: u16 = 0x8000;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Control prefix: 2 bytes, the top bit picks a tombstone, the rest is the key length.
    let Some((control, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let control = u16::from_be_bytes(*control);
    let key_len = usize::from(control & !TOMBSTONE_BIT).min(rest.len());
    let (key, value) = rest.split_at(key_len);
    let value = (control & TOMBSTONE_BIT == 0).then_some(value);

    let Ok(record) = Record::decode(key, value) else {
        return;
    };
    assert_eq!(
        record.check_encodable(),
        Ok(()),
        "decoded an unstorable record"
    );
    let key_again = record.encode_key();
    let value_again = record.encode_value();
    assert_eq!(value_again.is_none(), value.is_none(), "tombstone changed");
    let again = Record::decode(&key_again, value_again.as_deref());
    assert_eq!(again, Ok(record), "re-encoded record decodes differently");
});
