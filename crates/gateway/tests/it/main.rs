//! The gateway over loopback, against a real engine and journal: terminal connections
//! at their limits — frames that do not arrive in time, connections that send no
//! request, too many connections from one address — and over TLS. No issuer is
//! needed: the requests these tests send are answered by the engine itself.

mod admission;
mod connections;
mod harness;
mod supervision;
mod tls;
