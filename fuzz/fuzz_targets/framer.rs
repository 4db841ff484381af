//! Fuzzes the streaming framer and the cup-pos envelope: arbitrary bytes fed in
//! arbitrary pieces never panic and never yield a frame over the limit.
#![no_main]

use iso8583::frame::{CupEnvelope, FrameDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut dec = FrameDecoder::new(1024);
    for piece in bytes.chunks(step) {
        dec.feed(piece);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= 1024);
                    if let Ok(env) = CupEnvelope::split(frame) {
                        let _ = iso8583::Dialect::cup_pos().unpack(env.message);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
