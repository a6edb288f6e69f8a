//! Arbitrary bytes through the value and key decoders: errors are fine,
//! panics and huge allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use skyshelve::Key;

#[derive(Serialize, Deserialize, Debug)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: Vec<(i32, Option<u8>)>,
    nested: Option<Box<Record>>,
}

fuzz_target!(|data: &[u8]| {
    let _ = skyshelve::__private::decode_value::<Record>(data);
    let _ = skyshelve::__private::decode_value::<Vec<u64>>(data);
    let _ = <(String, i64, Vec<u8>)>::decode_key(&mut &data[..]);
    let _ = <(char, bool, [u16; 3], Option<String>)>::decode_key(&mut &data[..]);
});
