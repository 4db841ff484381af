//! `posguard iso decode|encode`: ISO 8583 messages to and from JSON.
//!
//! One JSON object per message:
//! `{"dialect", "tpdu"?, "header"?, "mti", "fields": {"3": "000000", …}, "subfields"?, "masked"?}`.
//! Text fields are shown as text, binary fields as uppercase hex. Secret fields are
//! masked unless `--show-secrets`; `encode` ignores `subfields` and `masked`.

use std::io::{Read, Write};

use anyhow::Context;
use clap::{Args, Subcommand};
use iso8583::frame::{encode_frame, CupEnvelope, CupHeader, FrameDecoder, Tpdu, DEFAULT_MAX_FRAME};
use iso8583::{is_secret_field, masked_value, subfields, Dialect, HeadEncoding, Message, Mti};
use serde_json::{json, Map, Value};

use crate::BadInput;

/// The `iso` subcommands.
#[derive(Debug, Subcommand)]
pub enum IsoCommand {
    /// Read messages (binary or hex) on stdin; print one JSON object per message.
    Decode(DecodeArgs),
    /// Read JSON objects on stdin; write the messages (binary, or hex lines).
    Encode(EncodeArgs),
}

/// Options shared by decode and encode.
#[derive(Debug, Args)]
pub struct Common {
    /// The dialect: `iso87-ascii` or `cup-pos`.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(iso8583::DIALECT_NAMES))]
    dialect: String,
    /// Messages carry the 2-byte length prefix (and, in cup-pos, TPDU and header).
    #[arg(long)]
    framed: bool,
    /// Bytes are hexadecimal text (whitespace ignored) instead of binary.
    #[arg(long)]
    hex: bool,
    /// Largest frame accepted or written, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: usize,
}

/// `posguard iso decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    common: Common,
    /// Show PAN, track data, PIN block, ICC data, MACs and keys in clear.
    #[arg(long)]
    show_secrets: bool,
}

/// `posguard iso encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    common: Common,
}

/// Runs an `iso` subcommand.
pub fn run(cmd: IsoCommand) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("read stdin")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        IsoCommand::Decode(a) => {
            for line in decode(&a.common, a.show_secrets, &input)? {
                writeln!(out, "{line}").context("write stdout")?;
            }
        }
        IsoCommand::Encode(a) => {
            let bytes = encode(&a.common, &input)?;
            out.write_all(&bytes).context("write stdout")?;
        }
    }
    out.flush().context("write stdout")
}

fn dialect(c: &Common) -> &'static Dialect {
    // clap has checked the name against DIALECT_NAMES.
    Dialect::by_name(&c.dialect).unwrap_or(Dialect::cup_pos())
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// Decodes every message in `input` to one JSON line each.
pub fn decode(c: &Common, show_secrets: bool, input: &[u8]) -> anyhow::Result<Vec<String>> {
    let d = dialect(c);
    let chunks: Vec<Vec<u8>> = if c.hex && !c.framed {
        let text = std::str::from_utf8(input).map_err(|_| bad("hex input is not text"))?;
        let lines = text.lines().filter(|l| !l.trim().is_empty());
        lines
            .enumerate()
            .map(|(i, l)| unhex(l, i + 1))
            .collect::<Result<_, _>>()?
    } else if c.hex {
        let text = std::str::from_utf8(input).map_err(|_| bad("hex input is not text"))?;
        vec![unhex(text, 1)?]
    } else {
        vec![input.to_vec()]
    };
    let mut lines = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if !c.framed {
            let msg = d
                .unpack(chunk)
                .map_err(|e| bad(format!("message {}: {e}", i + 1)))?;
            lines.push(to_json(d, None, &msg, show_secrets).to_string());
            continue;
        }
        let mut frames = FrameDecoder::new(c.max_frame);
        frames.feed(chunk);
        let mut n = 0;
        while let Some(frame) = frames
            .next_frame()
            .map_err(|e| bad(format!("frame {}: {e}", n + 1)))?
        {
            n += 1;
            let (env, iso) = match d.head() {
                HeadEncoding::Binary => {
                    let env =
                        CupEnvelope::split(frame).map_err(|e| bad(format!("frame {n}: {e}")))?;
                    (Some((env.tpdu, env.header)), env.message)
                }
                HeadEncoding::Ascii => (None, frame),
            };
            let msg = d.unpack(iso).map_err(|e| bad(format!("frame {n}: {e}")))?;
            lines.push(to_json(d, env, &msg, show_secrets).to_string());
        }
        if frames.pending() > 0 {
            return Err(bad(format!(
                "{} bytes of an incomplete frame at the end",
                frames.pending()
            )));
        }
    }
    Ok(lines)
}

fn unhex(text: &str, line: usize) -> anyhow::Result<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&clean).map_err(|e| bad(format!("line {line}: not hexadecimal: {e}")))
}

fn to_json(
    d: &Dialect,
    env: Option<(Tpdu, CupHeader)>,
    msg: &Message,
    show_secrets: bool,
) -> Value {
    let mut obj = Map::new();
    obj.insert("dialect".into(), json!(d.name()));
    if let Some((tpdu, header)) = env {
        obj.insert("tpdu".into(), json!(hex::encode_upper(tpdu.to_bytes())));
        obj.insert("header".into(), json!(hex::encode_upper(header.0)));
    }
    obj.insert("mti".into(), json!(msg.mti().as_str()));
    let mut fields = Map::new();
    let mut masked = Vec::new();
    for (f, v) in msg.fields() {
        let text = d.field(f).is_some_and(|s| s.class.is_text());
        let shown = if text {
            String::from_utf8_lossy(v).into_owned()
        } else {
            hex::encode_upper(v)
        };
        let shown = if !show_secrets && is_secret_field(msg.mti(), f) {
            masked.push(f);
            masked_value(f, v, shown.len())
        } else {
            shown
        };
        fields.insert(f.to_string(), json!(shown));
    }
    obj.insert("fields".into(), Value::Object(fields));
    let subs = subfields::describe(msg);
    let subs: Vec<_> = subs
        .into_iter()
        .filter(|(f, _)| show_secrets || !masked.contains(f))
        .collect();
    if !subs.is_empty() {
        let mut m = Map::new();
        for (f, list) in subs {
            let inner: Map<String, Value> = list.into_iter().map(|(k, v)| (k, json!(v))).collect();
            m.insert(f.to_string(), Value::Object(inner));
        }
        obj.insert("subfields".into(), Value::Object(m));
    }
    if !masked.is_empty() {
        obj.insert("masked".into(), json!(masked));
    }
    Value::Object(obj)
}

/// Encodes every JSON object in `input`.
pub fn encode(c: &Common, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let d = dialect(c);
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_slice(input).into_iter::<Value>();
    for (i, value) in stream.enumerate() {
        let n = i + 1;
        let value = value.map_err(|e| bad(format!("message {n}: not JSON: {e}")))?;
        let (msg, env) = from_json(d, &value).map_err(|e| bad(format!("message {n}: {e}")))?;
        let iso = d.pack(&msg).map_err(|e| bad(format!("message {n}: {e}")))?;
        let mut bytes = Vec::new();
        if c.framed {
            let mut body = Vec::new();
            if d.head() == HeadEncoding::Binary {
                let (tpdu, header) = env;
                CupEnvelope {
                    tpdu,
                    header,
                    message: &iso,
                }
                .write(&mut body);
            } else {
                body = iso;
            }
            encode_frame(&body, c.max_frame, &mut bytes)
                .map_err(|e| bad(format!("message {n}: {e}")))?;
        } else {
            bytes = iso;
        }
        if c.hex {
            out.extend_from_slice(hex::encode_upper(&bytes).as_bytes());
            out.push(b'\n');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

fn hex_array<const N: usize>(
    v: Option<&Value>,
    what: &str,
    default: [u8; N],
) -> Result<[u8; N], String> {
    let Some(v) = v else { return Ok(default) };
    let s = v
        .as_str()
        .ok_or_else(|| format!("{what} must be a hex string"))?;
    let b = hex::decode(s).map_err(|_| format!("{what} is not hex"))?;
    b.try_into()
        .map_err(|_| format!("{what} must be {N} bytes"))
}

fn from_json(d: &Dialect, v: &Value) -> Result<(Message, (Tpdu, CupHeader)), String> {
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let mti: Mti = obj
        .get("mti")
        .and_then(Value::as_str)
        .ok_or("missing \"mti\"")?
        .parse()
        .map_err(|_| "\"mti\" must be four digits".to_owned())?;
    let mut msg = Message::new(mti);
    let fields = obj
        .get("fields")
        .and_then(Value::as_object)
        .ok_or("missing \"fields\" object")?;
    for (k, val) in fields {
        let f: u8 = k
            .parse()
            .map_err(|_| format!("field key {k:?} is not a number"))?;
        let spec = d
            .field(f)
            .ok_or_else(|| format!("field {f} is not a data field"))?;
        let s = val
            .as_str()
            .ok_or_else(|| format!("field {f} must be a string"))?;
        if spec.class.is_text() {
            msg.set(f, s);
        } else {
            msg.set(
                f,
                hex::decode(s).map_err(|_| format!("field {f} must be hex"))?,
            );
        }
    }
    let tpdu = Tpdu::from_bytes(hex_array(obj.get("tpdu"), "tpdu", [0x60, 0, 0, 0, 0])?);
    let header = CupHeader(hex_array(
        obj.get("header"),
        "header",
        [0x60, 0, 0, 0, 0, 0],
    )?);
    Ok((msg, (tpdu, header)))
}
