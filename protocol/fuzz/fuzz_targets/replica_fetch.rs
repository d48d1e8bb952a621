//! Fuzzes the replica fetch frames nodes exchange (`spate_protocol::replica_fetch`):
//! arbitrary bytes decoded as a follower's request and as a leader's answer, and the
//! answer's record bytes walked for their end offset, as the follower does before handing
//! them to the engine. Nothing may panic; a request that decodes must survive its own round
//! trip with the same durable offsets.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use spate_protocol::replica_fetch::{
    REPLICA_FETCH_MAGIC, decode_request, decode_response, durable_offset, encode_request,
    records_end,
};

fuzz_target!(|data: &[u8]| {
    let mut framed = Vec::with_capacity(data.len() + 1);
    framed.push(REPLICA_FETCH_MAGIC);
    framed.extend_from_slice(data);
    let framed = Bytes::from(framed);

    if let Ok(request) = decode_request(framed.clone()) {
        let durable: Vec<Option<i64>> = request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(durable_offset))
            .collect();
        if let Ok(encoded) = encode_request(&request) {
            let again = decode_request(encoded).expect("an encoded request decodes");
            let durable_again: Vec<Option<i64>> = again
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(durable_offset))
                .collect();
            assert_eq!(durable, durable_again);
        }
    }
    if let Ok(response) = decode_response(framed) {
        for topic in &response.responses {
            for partition in &topic.partitions {
                if let Some(records) = &partition.records {
                    let _ = records_end(records, 0);
                }
            }
        }
    }
    let _ = records_end(&Bytes::copy_from_slice(data), 0);
});
