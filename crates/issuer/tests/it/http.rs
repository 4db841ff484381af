//! The HTTP API over a real socket, with the link alongside.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cardsec::x9_19_mac;
use expect_test::expect;
use iso8583::frame::{encode_frame, FrameDecoder};
use iso8583::Dialect;
use issuer::{linkmac, Bank, ClearKeys, Issuer, IssuerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{now, Req, World, PAN};

const BOUND: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a fresh connection; returns status and body.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: issuer\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    timeout(BOUND, s.read_to_end(&mut out))
        .await
        .expect("bounded")
        .expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

#[tokio::test]
async fn accounts_sms_clearing_and_book() {
    let keys = ClearKeys::demo();
    let config = IssuerConfig {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        ..IssuerConfig::default()
    };
    let bank = Bank::from_clear_keys(&keys).expect("bank");
    let issuer = Issuer::start_with(config, bank, Arc::new(now))
        .await
        .expect("starts");
    let web = issuer.http_addr();

    let open = format!(
        r#"{{"pan":"{PAN}","pin":"123456","expiry":"2712","balance_minor":100000,
            "credit_limit_minor":0,"daily_limit_minor":500000,"status":"active",
            "holder":"Li Lei","phone":"13800000000","language":"zh"}}"#
    );
    let (status, body) = call(web, "POST", "/accounts", &open).await;
    assert_eq!(status, 201);
    expect![[r#"{"id":1,"masked_pan":"622202*********0128"}"#]].assert_eq(&body);
    assert_eq!(
        call(web, "POST", "/accounts", &open).await.0,
        409,
        "same PAN twice"
    );
    let (status, body) = call(web, "POST", "/accounts", "{not json").await;
    assert_eq!(status, 400);
    assert!(body.starts_with(r#"{"error":"bad JSON"#), "{body}");
    let bad_pan = open.replace(PAN, "6222021234567890129");
    assert_eq!(call(web, "POST", "/accounts", &bad_pan).await.0, 400);

    // A sale over the link.
    let w = World::new();
    let mut m = Req::sale(1, 12_345).message(&w.zpk);
    let raw = linkmac::sign(&mut m, |d| Ok(x9_19_mac(&w.zak, d))).expect("sign");
    let mut wire = Vec::new();
    encode_frame(&raw, 8192, &mut wire).expect("frame");
    let mut link = TcpStream::connect(issuer.iso_addr())
        .await
        .expect("connect");
    link.write_all(&wire).await.expect("write");
    let mut dec = FrameDecoder::new(8192);
    let mut buf = [0u8; 4096];
    let reply = loop {
        if let Some(f) = dec.next_frame().expect("frame") {
            break Dialect::iso87_ascii().unpack(f).expect("reply");
        }
        let n = timeout(BOUND, link.read(&mut buf))
            .await
            .expect("bounded")
            .expect("read");
        assert!(n > 0, "link closed");
        dec.feed(&buf[..n]);
    };
    assert_eq!(reply.get_str(39), Some("00"));

    let (status, body) = call(web, "GET", "/accounts/1", "").await;
    assert_eq!(status, 200);
    assert!(!body.contains(PAN));
    expect![[r#"{"id":1,"holder":"Li Lei","phone":"13800000000","language":"zh","masked_pan":"622202*********0128","token":"t7.6f34478927af600c8aaafcc1bf63b7e73b4436e9","expiry":"2712","status":"active","currency":"CNY","balance_minor":87655,"credit_limit_minor":0,"holds_minor":0,"available_minor":87655,"daily_limit_minor":500000,"daily_spent_minor":12345,"pin_tries":0}"#]].assert_eq(&body);
    let (status, body) = call(web, "GET", "/accounts", "").await;
    assert_eq!(status, 200);
    assert!(body.starts_with(r#"[{"id":1,"#));
    assert_eq!(call(web, "GET", "/accounts/9", "").await.0, 404);
    assert_eq!(call(web, "GET", "/accounts/x", "").await.0, 400);

    let (status, body) = call(web, "GET", "/sms?account=1", "").await;
    assert_eq!(status, 200);
    expect![[r#"[{"seq":1,"time":"2025-03-21T14:05:09","account":1,"phone":"13800000000","language":"zh","kind":"sale","rrn":"000000000001","text":"【posguard模拟银行】您的卡622202*********0128于03月21日14:05在Lucky Noodles Shanghai消费，支出123.45 CNY，可用余额876.55 CNY。"}]"#]].assert_eq(&body);
    assert_eq!(call(web, "GET", "/sms?account=2", "").await.1, "[]");

    let (status, body) = call(web, "GET", "/clearing/2025-03-21", "").await;
    assert_eq!(status, 200);
    expect![[r#"
        rrn,auth_code,stan,terminal,merchant,masked_pan,token,amount_minor,currency,type,time
        000000000001,000001,000001,TERM0001,MERCHANT0000001,622202*********0128,t7.6f34478927af600c8aaafcc1bf63b7e73b4436e9,12345,CNY,sale,2025-03-21T14:05:09
    "#]].assert_eq(&body);
    assert_eq!(call(web, "GET", "/clearing/21-03-2025", "").await.0, 400);

    let (status, body) = call(web, "GET", "/book", "").await;
    assert_eq!(status, 200);
    let book: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(book["balanced"], true);
    assert_eq!(book["sum_by_currency"]["CNY"], 0);

    let (status, _) = call(web, "POST", "/accounts/1/status", r#"{"status":"lost"}"#).await;
    assert_eq!(status, 204);
    let (_, body) = call(web, "GET", "/accounts/1", "").await;
    assert!(body.contains(r#""status":"lost""#));
    assert_eq!(
        call(web, "POST", "/accounts/1/status", r#"{"status":"gone"}"#)
            .await
            .0,
        400
    );

    timeout(BOUND, issuer.stop()).await.expect("stops");
}
