//! Integration tests of the switch: the sans-IO engine driven in-process by the real
//! terminal (`terminal::Terminal`) and a scripted issuer, with every durable write kept.

mod adjust;
mod harness;
mod properties;
mod replies;
mod restart;
mod risk_hold;
mod settlement;
mod signon;
mod track;
mod zone;
