//! Fuzzes the unpacker of both dialects: no input may panic, and whatever decodes
//! must re-encode to bytes that decode to the same message.
#![no_main]

use iso8583::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let dialect = if which % 2 == 0 { Dialect::cup_pos() } else { Dialect::iso87_ascii() };
    if let Ok(msg) = dialect.unpack(bytes) {
        let again = dialect.pack(&msg).expect("a decoded message re-encodes");
        assert_eq!(dialect.unpack(&again).expect("re-encoded bytes decode"), msg);
    }
});
