//! Streaming framer: frames split across reads, several per read, and the size limit.

use iso8583::frame::{encode_frame, FrameDecoder, FrameError};
use proptest::prelude::*;

proptest! {
    /// However a stream of frames is cut into reads, the same frames come out.
    #[test]
    fn any_split_of_a_stream_yields_the_same_frames(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..8),
        cuts in prop::collection::vec(1usize..64, 1..40),
    ) {
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(f, 8192, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(8192);
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = cuts[i % cuts.len()].min(wire.len() - pos);
            dec.feed(&wire[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert_eq!(dec.pending(), 0);
    }

    /// Arbitrary bytes never panic the framer; an error is only ever "too large".
    #[test]
    fn arbitrary_bytes_never_panic_the_framer(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut dec = FrameDecoder::new(512);
        dec.feed(&bytes);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => prop_assert!(f.len() <= 512),
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => { prop_assert!(len > max); break; }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}

#[test]
fn frame_at_the_limit_passes_and_one_over_is_refused() {
    let mut wire = Vec::new();
    encode_frame(&[7u8; 8192], 8192, &mut wire).unwrap();
    let mut dec = FrameDecoder::new(8192);
    dec.feed(&wire);
    assert_eq!(dec.next_frame().unwrap().map(<[u8]>::len), Some(8192));
    let mut dec = FrameDecoder::new(8192);
    dec.feed(&[0x20, 0x01, 0xAA]);
    assert_eq!(
        dec.next_frame(),
        Err(FrameError::TooLarge {
            len: 8193,
            max: 8192
        })
    );
}
