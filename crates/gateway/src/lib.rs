//! posguard's network edge.
//!
//! [`run`] serves terminals (`cup-pos`, length-prefixed, TPDU and header) on TCP or
//! TLS listeners, keeps several connections to the issuer (`iso87-ascii`, over TCP or
//! TLS) with reconnect and echo keep-alive, and drives the sans-IO [`switch::Engine`] from one task: it
//! feeds inputs in and carries out the actions that come out — persisting through the
//! [`store::Journal`] (group commit) before anything is sent, sending frames, running
//! issuer timers. Every limit (connections in all and per address, frame size and
//! time, TLS handshake time, requests in flight per connection, idle time, queue
//! depths) is configured here.

mod admission;
mod driver;
mod link;
pub mod node_metrics;
mod terminals;

pub use driver::{
    run, Clock, Core, GatewayConfig, GatewayStats, KeyWatch, Reload, RulesWatch, StatusWatch,
    SystemClock,
};
pub use switch::TerminalDialect;
pub use terminals::TerminalListener;
