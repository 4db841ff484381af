//! Framing: the 2-byte big-endian length prefix, and the `cup-pos` TPDU and header.
//!
//! [`FrameDecoder`] is sans-IO: the caller feeds whatever bytes a read returned and
//! takes out whole frames, so frames split across reads and several frames in one
//! read are both handled. The maximum frame size is checked from the length prefix,
//! before any buffer grows for the frame.

/// The default maximum frame size (bytes after the length prefix).
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024;

/// A framing error. After one, the stream is out of step and must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A frame is shorter than the TPDU and header it must carry.
    #[error("frame of {len} bytes is too short for TPDU and header ({need} bytes)")]
    TooShort {
        /// The frame's length.
        len: usize,
        /// Bytes needed for TPDU plus header.
        need: usize,
    },
}

/// Splits a byte stream into length-prefixed frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
    frames_seen: u64,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes (at most 65535).
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_frame: max_frame.min(u16::MAX as usize),
            frames_seen: 0,
        }
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet returned as frames. Once [`FrameDecoder::next_frame`] has
    /// returned `None`, these are the start of a frame that has not fully arrived.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whole frames taken out of the stream so far, zero-length keep-alives included.
    ///
    /// A caller that times frames uses it to tell a new partial frame from the old one:
    /// when it has moved since the last look, bytes still pending began after a frame
    /// boundary.
    pub fn frames_seen(&self) -> u64 {
        self.frames_seen
    }

    /// The next whole frame (without its length prefix), if one has arrived.
    ///
    /// Zero-length frames are keep-alives and are skipped.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        loop {
            let avail = &self.buf[self.start..];
            if avail.len() < 2 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([avail[0], avail[1]]));
            if len > self.max_frame {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            if len == 0 {
                self.start += 2;
                self.frames_seen += 1;
                continue;
            }
            if avail.len() < 2 + len {
                return Ok(None);
            }
            let begin = self.start + 2;
            self.start = begin + len;
            self.frames_seen += 1;
            return Ok(Some(&self.buf[begin..begin + len]));
        }
    }
}

/// Appends `payload` with its 2-byte length prefix; refuses payloads over `max_frame`.
pub fn encode_frame(payload: &[u8], max_frame: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let max = max_frame.min(u16::MAX as usize);
    if payload.len() > max {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The 5-byte transport protocol data unit in front of `cup-pos` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tpdu {
    /// TPDU id, `0x60` in practice.
    pub id: u8,
    /// Destination address.
    pub destination: u16,
    /// Source address.
    pub source: u16,
}

impl Tpdu {
    /// Reads a TPDU from its 5 bytes.
    pub fn from_bytes(b: [u8; 5]) -> Tpdu {
        Tpdu {
            id: b[0],
            destination: u16::from_be_bytes([b[1], b[2]]),
            source: u16::from_be_bytes([b[3], b[4]]),
        }
    }

    /// The 5 bytes of this TPDU.
    pub fn to_bytes(self) -> [u8; 5] {
        let d = self.destination.to_be_bytes();
        let s = self.source.to_be_bytes();
        [self.id, d[0], d[1], s[0], s[1]]
    }

    /// The TPDU for the reply: source and destination swapped.
    pub fn reply(self) -> Tpdu {
        Tpdu {
            id: self.id,
            destination: self.source,
            source: self.destination,
        }
    }
}

/// The 6-byte `cup-pos` application header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CupHeader(pub [u8; 6]);

impl CupHeader {
    /// Application type: `0x60` magstripe, `0x61` IC.
    pub fn application_type(&self) -> u8 {
        self.0[0]
    }

    /// Software version byte.
    pub fn software_version(&self) -> u8 {
        self.0[1]
    }

    /// Terminal status (high nibble) and processing requirement (low nibble).
    pub fn status_nibbles(&self) -> (u8, u8) {
        (self.0[2] >> 4, self.0[2] & 0x0f)
    }
}

/// A `cup-pos` frame body split into TPDU, header and ISO message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CupEnvelope<'a> {
    /// The TPDU.
    pub tpdu: Tpdu,
    /// The application header.
    pub header: CupHeader,
    /// The ISO 8583 message bytes (MTI onward).
    pub message: &'a [u8],
}

impl<'a> CupEnvelope<'a> {
    /// Bytes of TPDU plus header.
    pub const PREFIX_LEN: usize = 11;

    /// Splits a frame body (after the length prefix).
    pub fn split(frame: &'a [u8]) -> Result<CupEnvelope<'a>, FrameError> {
        if frame.len() < Self::PREFIX_LEN {
            return Err(FrameError::TooShort {
                len: frame.len(),
                need: Self::PREFIX_LEN,
            });
        }
        let mut t = [0u8; 5];
        t.copy_from_slice(&frame[..5]);
        let mut h = [0u8; 6];
        h.copy_from_slice(&frame[5..11]);
        Ok(CupEnvelope {
            tpdu: Tpdu::from_bytes(t),
            header: CupHeader(h),
            message: &frame[11..],
        })
    }

    /// Appends TPDU, header and message (no length prefix).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tpdu.to_bytes());
        out.extend_from_slice(&self.header.0);
        out.extend_from_slice(self.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_joined_frames() {
        let mut wire = Vec::new();
        encode_frame(b"abc", 16, &mut wire).unwrap();
        wire.extend_from_slice(&[0, 0]);
        encode_frame(b"defgh", 16, &mut wire).unwrap();
        let mut d = FrameDecoder::new(16);
        let mut got = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, [b"abc".to_vec(), b"defgh".to_vec()]);
        let mut d = FrameDecoder::new(16);
        d.feed(&wire);
        assert_eq!(d.next_frame().unwrap(), Some(&b"abc"[..]));
        assert_eq!(d.next_frame().unwrap(), Some(&b"defgh"[..]));
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn partial_frames_are_pending_and_boundaries_are_counted() {
        let mut d = FrameDecoder::new(16);
        // Half a length prefix is already a frame in progress.
        d.feed(&[0]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!((d.pending(), d.frames_seen()), (1, 0));
        // A keep-alive completes; the next frame's prefix and one byte follow in the
        // same read.
        d.feed(&[0, 0, 3, b'a']);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!((d.pending(), d.frames_seen()), (3, 1));
        d.feed(b"bc");
        assert_eq!(d.next_frame().unwrap(), Some(&b"abc"[..]));
        assert_eq!((d.pending(), d.frames_seen()), (0, 2));
    }

    #[test]
    fn oversized_frame_is_refused_from_its_prefix() {
        let mut d = FrameDecoder::new(8192);
        d.feed(&[0x20, 0x01]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: 8193,
                max: 8192
            })
        );
        assert!(encode_frame(&[0; 9], 8, &mut Vec::new()).is_err());
    }

    #[test]
    fn tpdu_reply_swaps_addresses() {
        let t = Tpdu::from_bytes([0x60, 0x00, 0x03, 0x00, 0x00]);
        assert_eq!(t.reply().to_bytes(), [0x60, 0x00, 0x00, 0x00, 0x03]);
    }
}
