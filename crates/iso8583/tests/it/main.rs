//! Integration tests of the ISO 8583 codec.

mod framing;
mod interop;
mod known_answers;
mod properties;

use iso8583::{Dialect, Message};

/// Renders a message as one `field = value` line per field (binary fields in hex).
pub fn render(dialect: &Dialect, msg: &Message) -> String {
    let mut s = format!("mti = {}\n", msg.mti());
    for (f, v) in msg.fields() {
        let spec = dialect.field(f).expect("field in table");
        let shown = if spec.class.is_text() {
            String::from_utf8_lossy(v).into_owned()
        } else {
            hex::encode_upper(v)
        };
        s.push_str(&format!("{f:>3} {:<4} = {shown}\n", spec.class.to_string()));
    }
    s
}
