//! The HTTP API over a real socket, with the link alongside.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cardsec::x9_19_mac;
use expect_test::expect;
use iso8583::frame::{encode_frame, FrameDecoder};
use iso8583::Dialect;
use issuer::http::MAX_BODY_BYTES;
use issuer::{linkmac, Bank, ClearKeys, Issuer, IssuerConfig, MAX_ACCOUNT_MINOR};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{luhn_pan, now, Req, World, PAN};

const BOUND: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a fresh connection with `headers` (each ending in CRLF);
/// returns status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: issuer\r\nConnection: close\r\n\
         {headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write");
    let mut out = Vec::new();
    // A server that refuses a body may close before reading all of it; what it
    // answered first is what counts.
    let _ = timeout(BOUND, s.read_to_end(&mut out))
        .await
        .expect("bounded");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

/// One JSON request.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let json = "Content-Type: application/json\r\n";
    request(addr, method, path, json, body.as_bytes()).await
}

/// The configuration of a simulator on free ports whose API needs `api_token`.
fn config(api_token: Option<&str>) -> IssuerConfig {
    IssuerConfig {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        api_token: api_token.map(str::to_owned),
        ..IssuerConfig::default()
    }
}

/// A simulator on free ports over a bank with no accounts, its API open.
async fn start() -> Issuer {
    start_guarded(None).await
}

/// A simulator on free ports over a bank with no accounts, its API needing `api_token`.
async fn start_guarded(api_token: Option<&str>) -> Issuer {
    let config = config(api_token);
    let bank = Bank::from_clear_keys(&config.keys).expect("bank");
    Issuer::start_with(config, bank, Arc::new(now))
        .await
        .expect("starts")
}

/// A valid `POST /accounts` body for `pan`.
fn open_body(pan: &str) -> Value {
    json!({
        "pan": pan, "pin": "123456", "expiry": "2712", "balance_minor": 100_000,
        "credit_limit_minor": 0, "daily_limit_minor": 500_000, "status": "active",
        "holder": "Li Lei", "phone": "13800000000", "language": "zh", "currency": "CNY",
    })
}

/// `body` with `field` set to `value`, or removed when `value` is `None`.
fn with(mut body: Value, field: &str, value: Option<Value>) -> String {
    let map = body.as_object_mut().expect("object");
    match value {
        Some(v) => map.insert(field.to_owned(), v),
        None => map.remove(field),
    };
    body.to_string()
}

/// Asserts the bank has exactly `accounts` accounts and its book verifies.
fn assert_bank(issuer: &Issuer, accounts: usize) {
    let bank = issuer.bank();
    let bank = bank.lock().expect("bank");
    assert_eq!(bank.accounts().len(), accounts, "accounts");
    assert_eq!(bank.book().verify(), Ok(()), "the book verifies");
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

#[tokio::test]
async fn every_bad_field_is_a_400_naming_it() {
    let issuer = start().await;
    let web = issuer.http_addr();
    let pan = luhn_pan("622202123456789012");
    let mut out = String::new();
    for (field, value) in [
        ("pan", None),
        ("pan", Some(json!("6222021234567890129"))),
        ("pan", Some(json!("62220212345"))),
        ("pan", Some(json!("62220212345678901234"))),
        ("pan", Some(json!("622202123456789012X"))),
        ("pan", Some(json!(6222021234567890128u64))),
        ("pin", None),
        ("pin", Some(json!("123"))),
        ("pin", Some(json!("1234567890123"))),
        ("pin", Some(json!("12a456"))),
        ("expiry", Some(json!("2713"))),
        ("expiry", Some(json!("27-12"))),
        ("expiry", Some(json!(null))),
        ("balance_minor", Some(json!(-1))),
        ("balance_minor", Some(json!(MAX_ACCOUNT_MINOR + 1))),
        ("balance_minor", Some(json!(u64::MAX))),
        ("balance_minor", Some(json!(1.5))),
        ("balance_minor", Some(json!("100"))),
        ("credit_limit_minor", Some(json!(-1))),
        ("credit_limit_minor", Some(json!(MAX_ACCOUNT_MINOR + 1))),
        ("daily_limit_minor", Some(json!(-1))),
        ("daily_limit_minor", Some(json!(MAX_ACCOUNT_MINOR + 1))),
        ("status", Some(json!("gone"))),
        ("status", Some(json!(1))),
        ("holder", Some(json!("a".repeat(65)))),
        ("holder", Some(json!("Li\nLei"))),
        ("holder", Some(json!("<script>"))),
        ("phone", Some(json!("1380"))),
        ("phone", Some(json!("1380000000000000"))),
        ("phone", Some(json!("+86 138 0000 0000"))),
        ("language", Some(json!("fr"))),
        ("currency", Some(json!("XXX"))),
        ("currency", Some(json!("999"))),
        ("currency", Some(json!("CNYY"))),
        ("nickname", Some(json!("Lei"))),
    ] {
        let body = with(open_body(&pan), field, value.clone());
        let (status, answer) = call(web, "POST", "/accounts", &body).await;
        let shown = value.map_or("absent".into(), |v| v.to_string());
        out += &format!("{field} {shown}: {status} {answer}\n");
    }
    expect![[r#"
        pan absent: 400 {"error":"pan is required","field":"pan"}
        pan "6222021234567890129": 400 {"error":"pan fails the Luhn check","field":"pan"}
        pan "62220212345": 400 {"error":"pan must be 12 to 19 digits","field":"pan"}
        pan "62220212345678901234": 400 {"error":"pan must be 12 to 19 digits","field":"pan"}
        pan "622202123456789012X": 400 {"error":"pan must be 12 to 19 digits","field":"pan"}
        pan 6222021234567890128: 400 {"error":"pan must be a string","field":"pan"}
        pin absent: 400 {"error":"pin is required","field":"pin"}
        pin "123": 400 {"error":"pin must be 4 to 12 digits","field":"pin"}
        pin "1234567890123": 400 {"error":"pin must be 4 to 12 digits","field":"pin"}
        pin "12a456": 400 {"error":"pin must be 4 to 12 digits","field":"pin"}
        expiry "2713": 400 {"error":"expiry must be YYMM with a month 01 to 12","field":"expiry"}
        expiry "27-12": 400 {"error":"expiry must be YYMM with a month 01 to 12","field":"expiry"}
        expiry null: 400 {"error":"expiry must be a string","field":"expiry"}
        balance_minor -1: 400 {"error":"balance_minor must be between 0 and 1000000000000","field":"balance_minor"}
        balance_minor 1000000000001: 400 {"error":"balance_minor must be between 0 and 1000000000000","field":"balance_minor"}
        balance_minor 18446744073709551615: 400 {"error":"balance_minor must be between 0 and 1000000000000","field":"balance_minor"}
        balance_minor 1.5: 400 {"error":"balance_minor must be an integer between 0 and 1000000000000","field":"balance_minor"}
        balance_minor "100": 400 {"error":"balance_minor must be an integer between 0 and 1000000000000","field":"balance_minor"}
        credit_limit_minor -1: 400 {"error":"credit_limit_minor must be between 0 and 1000000000000","field":"credit_limit_minor"}
        credit_limit_minor 1000000000001: 400 {"error":"credit_limit_minor must be between 0 and 1000000000000","field":"credit_limit_minor"}
        daily_limit_minor -1: 400 {"error":"daily_limit_minor must be between 0 and 1000000000000","field":"daily_limit_minor"}
        daily_limit_minor 1000000000001: 400 {"error":"daily_limit_minor must be between 0 and 1000000000000","field":"daily_limit_minor"}
        status "gone": 400 {"error":"status must be one of active, lost, stolen, blocked","field":"status"}
        status 1: 400 {"error":"status must be one of active, lost, stolen, blocked","field":"status"}
        holder "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": 400 {"error":"holder must be at most 64 letters, digits, spaces or .'-·","field":"holder"}
        holder "Li\nLei": 400 {"error":"holder must be at most 64 letters, digits, spaces or .'-·","field":"holder"}
        holder "<script>": 400 {"error":"holder must be at most 64 letters, digits, spaces or .'-·","field":"holder"}
        phone "1380": 400 {"error":"phone must be 5 to 15 digits, optionally after a +","field":"phone"}
        phone "1380000000000000": 400 {"error":"phone must be 5 to 15 digits, optionally after a +","field":"phone"}
        phone "+86 138 0000 0000": 400 {"error":"phone must be 5 to 15 digits, optionally after a +","field":"phone"}
        language "fr": 400 {"error":"language must be one of zh, en","field":"language"}
        currency "XXX": 400 {"error":"currency must be an ISO 4217 code posguard knows","field":"currency"}
        currency "999": 400 {"error":"currency must be an ISO 4217 code posguard knows","field":"currency"}
        currency "CNYY": 400 {"error":"currency must be an ISO 4217 code posguard knows","field":"currency"}
        nickname "Lei": 400 {"error":"nickname is not a field of this request","field":"nickname"}
    "#]]
    .assert_eq(&out);
    assert_bank(&issuer, 0);
    let (status, _) = call(web, "POST", "/accounts", &open_body(&pan).to_string()).await;
    assert_eq!(
        status, 201,
        "each case differs from a valid body in one field"
    );
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

#[tokio::test]
async fn every_bound_accepts_its_edge() {
    let issuer = start().await;
    let web = issuer.http_addr();
    let mut out = String::new();
    for (i, (field, value)) in [
        ("balance_minor", json!(0)),
        ("balance_minor", json!(MAX_ACCOUNT_MINOR)),
        ("credit_limit_minor", json!(MAX_ACCOUNT_MINOR)),
        ("daily_limit_minor", json!(0)),
        ("daily_limit_minor", json!(MAX_ACCOUNT_MINOR)),
        ("pin", json!("1234")),
        ("pin", json!("123456789012")),
        ("holder", json!("a".repeat(64))),
        ("holder", json!("王小明")),
        ("holder", json!("Mary-Jane O'Neil Jr.")),
        ("holder", json!("")),
        ("phone", json!("+85290000000")),
        ("phone", json!("")),
        ("language", json!("en")),
        ("currency", json!("840")),
        ("currency", json!("usd")),
    ]
    .into_iter()
    .enumerate()
    {
        let pan = luhn_pan(&format!("62220212345678{i:04}"));
        let body = with(open_body(&pan), field, Some(value.clone()));
        let (status, _) = call(web, "POST", "/accounts", &body).await;
        out += &format!("{field} {value}: {status}\n");
    }
    expect![[r#"
        balance_minor 0: 201
        balance_minor 1000000000000: 201
        credit_limit_minor 1000000000000: 201
        daily_limit_minor 0: 201
        daily_limit_minor 1000000000000: 201
        pin "1234": 201
        pin "123456789012": 201
        holder "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": 201
        holder "王小明": 201
        holder "Mary-Jane O'Neil Jr.": 201
        holder "": 201
        phone "+85290000000": 201
        phone "": 201
        language "en": 201
        currency "840": 201
        currency "usd": 201
    "#]]
    .assert_eq(&out);
    assert_bank(&issuer, 16);
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

#[tokio::test]
async fn extreme_opening_balances_leave_the_bank_as_it_was() {
    let issuer = start().await;
    let web = issuer.http_addr();
    let (status, _) = call(web, "POST", "/accounts", &open_body(PAN).to_string()).await;
    assert_eq!(status, 201);
    let other = luhn_pan("411111111111111");
    for balance in [json!(i64::MAX), json!(i64::MIN), json!(-1)] {
        let body = with(open_body(&other), "balance_minor", Some(balance));
        let (status, answer) = call(web, "POST", "/accounts", &body).await;
        assert_eq!(status, 400, "{body}");
        expect![[r#"{"error":"balance_minor must be between 0 and 1000000000000","field":"balance_minor"}"#]].assert_eq(&answer);
        assert_bank(&issuer, 1);
    }
    // Nothing of the refused card stayed behind: it opens now as account 2.
    let (status, answer) = call(web, "POST", "/accounts", &open_body(&other).to_string()).await;
    assert_eq!(
        (status, answer.as_str()),
        (201, r#"{"id":2,"masked_pan":"411111******1111"}"#)
    );
    assert_bank(&issuer, 2);
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

#[tokio::test]
async fn a_credit_line_is_the_way_to_spend_beyond_the_balance() {
    let issuer = start().await;
    let web = issuer.http_addr();
    let body = json!({"pan": PAN, "pin": "123456", "expiry": "2712", "credit_limit_minor": 50_000});
    let (status, _) = call(web, "POST", "/accounts", &body.to_string()).await;
    assert_eq!(status, 201);
    let (_, view) = call(web, "GET", "/accounts/1", "").await;
    let view: Value = serde_json::from_str(&view).expect("json");
    assert_eq!(
        (
            &view["balance_minor"],
            &view["credit_limit_minor"],
            &view["available_minor"]
        ),
        (&json!(0), &json!(50_000), &json!(50_000))
    );
    let in_debt = with(
        open_body(&luhn_pan("411111111111111")),
        "balance_minor",
        Some(json!(-100)),
    );
    let in_debt = with(
        serde_json::from_str(&in_debt).expect("json"),
        "credit_limit_minor",
        Some(json!(1_000)),
    );
    let (status, answer) = call(web, "POST", "/accounts", &in_debt).await;
    assert_eq!(
        status, 400,
        "no negative balance, even within a credit line: {answer}"
    );
    assert_bank(&issuer, 1);
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

/// One request described as `METHOD PATH [CONTENT-TYPE|-]` (JSON by default, `-` for
/// none), reported as one line.
async fn case(web: SocketAddr, line: &str, body: &str, shown: &str) -> String {
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let headers = match words.next() {
        None => "Content-Type: application/json\r\n".to_owned(),
        Some("-") => String::new(),
        Some(other) => format!("Content-Type: {other}\r\n"),
    };
    let (status, answer) = request(web, method, path, &headers, body.as_bytes()).await;
    format!("{line} {shown}: {status} {answer}\n")
}

#[tokio::test]
async fn malformed_requests_get_a_json_4xx() {
    let issuer = start().await;
    let web = issuer.http_addr();
    let (status, _) = call(web, "POST", "/accounts", &open_body(PAN).to_string()).await;
    assert_eq!(status, 201);
    let mut out = String::new();
    for (line, body) in [
        ("POST /accounts", "{not json"),
        ("POST /accounts", ""),
        ("POST /accounts", "[]"),
        ("POST /accounts text/plain", "{}"),
        ("POST /accounts -", "{}"),
        ("POST /accounts/1/status", "lost"),
        ("POST /accounts/1/status", "{}"),
        ("POST /accounts/1/status", r#"{"status":"lost","by":"me"}"#),
        ("POST /accounts/9/status", r#"{"status":"lost"}"#),
        ("POST /accounts/x/status", r#"{"status":"lost"}"#),
        ("GET /accounts/+1", ""),
        ("GET /accounts/000000000000000000001", ""),
        ("GET /accounts/18446744073709551616", ""),
        ("GET /sms?account=x", ""),
        ("GET /sms?acount=1", ""),
        ("GET /clearing/2025-3-21", ""),
        ("GET /clearing/+2025-03-21", ""),
        ("GET /clearing/2025-02-30", ""),
    ] {
        out += &case(web, line, body, body).await;
    }
    let valid = open_body(&luhn_pan("411111111111111")).to_string();
    for len in [MAX_BODY_BYTES + 1, MAX_BODY_BYTES] {
        let padded = format!("{valid:<len$}");
        out += &case(web, "POST /accounts", &padded, &format!("<{len} bytes>")).await;
    }
    expect![[r#"
        POST /accounts {not json: 400 {"error":"bad JSON: key must be a string at line 1 column 2"}
        POST /accounts : 400 {"error":"bad JSON: EOF while parsing a value at line 1 column 0"}
        POST /accounts []: 400 {"error":"the body must be a JSON object"}
        POST /accounts text/plain {}: 415 {"error":"the body must be JSON (Content-Type: application/json)"}
        POST /accounts - {}: 415 {"error":"the body must be JSON (Content-Type: application/json)"}
        POST /accounts/1/status lost: 400 {"error":"bad JSON: expected value at line 1 column 1"}
        POST /accounts/1/status {}: 400 {"error":"status is required","field":"status"}
        POST /accounts/1/status {"status":"lost","by":"me"}: 400 {"error":"by is not a field of this request","field":"by"}
        POST /accounts/9/status {"status":"lost"}: 404 {"error":"no account 9","field":"id"}
        POST /accounts/x/status {"status":"lost"}: 400 {"error":"id must be an account number (1 to 20 digits)","field":"id"}
        GET /accounts/+1 : 400 {"error":"id must be an account number (1 to 20 digits)","field":"id"}
        GET /accounts/000000000000000000001 : 400 {"error":"id must be an account number (1 to 20 digits)","field":"id"}
        GET /accounts/18446744073709551616 : 400 {"error":"id must be an account number (1 to 20 digits)","field":"id"}
        GET /sms?account=x : 400 {"error":"account must be an account number (1 to 20 digits)","field":"account"}
        GET /sms?acount=1 : 400 {"error":"acount is not a parameter of /sms","field":"acount"}
        GET /clearing/2025-3-21 : 400 {"error":"date must be a date written YYYY-MM-DD","field":"date"}
        GET /clearing/+2025-03-21 : 400 {"error":"date must be a date written YYYY-MM-DD","field":"date"}
        GET /clearing/2025-02-30 : 400 {"error":"date must be a date written YYYY-MM-DD","field":"date"}
        POST /accounts <16385 bytes>: 413 {"error":"the body must be at most 16384 bytes"}
        POST /accounts <16384 bytes>: 201 {"id":2,"masked_pan":"411111******1111"}
    "#]]
    .assert_eq(&out);
    assert_bank(&issuer, 2);
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

const TOKEN: &str = "s3cret-token-0123456789";

/// One JSON request with `authorization` as its `Authorization` header (none when
/// empty), reported as one line; a success's body is left out.
async fn authorized(web: SocketAddr, line: &str, authorization: &str, body: &str) -> String {
    let (method, path) = line.split_once(' ').expect("METHOD PATH");
    let mut headers = "Content-Type: application/json\r\n".to_owned();
    if !authorization.is_empty() {
        headers += &format!("Authorization: {authorization}\r\n");
    }
    let (status, answer) = request(web, method, path, &headers, body.as_bytes()).await;
    let answer = if status < 300 { "" } else { &answer };
    let shown = authorization.replace(TOKEN, "<token>");
    format!("{line} [{shown}]: {status} {answer}\n").replace(" \n", "\n")
}

#[tokio::test]
async fn a_configured_token_guards_every_route() {
    let issuer = start_guarded(Some(TOKEN)).await;
    let web = issuer.http_addr();
    let right = format!("Bearer {TOKEN}");
    let (basic, longer) = (format!("Basic {TOKEN}"), format!("{right}x"));
    let (shorter, lower) = (&right[..right.len() - 1], format!("bearer  {TOKEN}"));
    let wrong = "Bearer wrong-token-012345";
    let open = open_body(PAN).to_string();
    let stolen = r#"{"status":"stolen"}"#;
    let active = r#"{"status":"active"}"#;
    let mut out = String::new();
    for (line, authorization, body) in [
        ("POST /accounts", "", open.as_str()),
        ("POST /accounts", &right, &open),
        ("POST /accounts/1/status", &right, stolen),
        ("POST /accounts/1/status", "", active),
        ("POST /accounts/1/status", wrong, active),
        ("POST /accounts/1/status", &basic, active),
        ("POST /accounts/1/status", &longer, active),
        ("POST /accounts/1/status", shorter, active),
        ("POST /accounts/1/status", "Bearer", active),
        ("GET /accounts", "", ""),
        ("GET /accounts/1", "", ""),
        ("GET /sms", "", ""),
        ("GET /clearing/2025-03-21", "", ""),
        ("GET /book", "", ""),
        ("GET /no-such-route", "", ""),
        ("GET /accounts", &lower, ""),
        ("GET /book", &right, ""),
    ] {
        out += &authorized(web, line, authorization, body).await;
    }
    expect![[r#"
        POST /accounts []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts [Bearer <token>]: 201
        POST /accounts/1/status [Bearer <token>]: 204
        POST /accounts/1/status []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts/1/status [Bearer wrong-token-012345]: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts/1/status [Basic <token>]: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts/1/status [Bearer <token>x]: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts/1/status [Bearer s3cret-token-012345678]: 401 {"error":"this API needs Authorization: Bearer <token>"}
        POST /accounts/1/status [Bearer]: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /accounts []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /accounts/1 []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /sms []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /clearing/2025-03-21 []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /book []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /no-such-route []: 401 {"error":"this API needs Authorization: Bearer <token>"}
        GET /accounts [bearer  <token>]: 200
        GET /book [Bearer <token>]: 200
    "#]]
    .assert_eq(&out);
    let bank = issuer.bank();
    let card = bank.lock().expect("bank").account(issuer::AccountId(1));
    assert_eq!(
        card.map(|a| a.status),
        Some(issuer::CardStatus::Stolen),
        "the stolen card stays stolen"
    );
    assert_bank(&issuer, 1);
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

#[tokio::test]
async fn a_malformed_token_is_refused_at_start() {
    let mut out = String::new();
    for token in [
        "",
        "too-short",
        "has spaces in it 0123",
        "ünïcödé-0123456789",
        &"t".repeat(257),
    ] {
        let config = config(Some(token));
        let shown = format!("{config:?}");
        assert!(
            token.is_empty() || !shown.contains(token),
            "Debug redacts the token"
        );
        let bank = Bank::from_clear_keys(&config.keys).expect("bank");
        let e = Issuer::start_with(config, bank, Arc::new(now))
            .await
            .expect_err("refused");
        out += &format!("{} chars: {e}\n", token.chars().count());
    }
    expect![[r#"
        0 chars: invalid api_token: must be 16 to 256 letters, digits or -._~+/=
        9 chars: invalid api_token: must be 16 to 256 letters, digits or -._~+/=
        21 chars: invalid api_token: must be 16 to 256 letters, digits or -._~+/=
        18 chars: invalid api_token: must be 16 to 256 letters, digits or -._~+/=
        257 chars: invalid api_token: must be 16 to 256 letters, digits or -._~+/=
    "#]]
    .assert_eq(&out);
    let issuer = start_guarded(Some(&"t".repeat(256))).await;
    timeout(BOUND, issuer.stop()).await.expect("stops");
}

#[tokio::test]
async fn unusable_link_tls_files_are_refused_at_start_naming_the_file() {
    let missing = std::env::temp_dir().join("posguard-issuer-no-such-cert.pem");
    let config = IssuerConfig {
        tls: Some(tls::ServerFiles {
            cert: missing.clone(),
            key: missing.clone(),
            client_ca: None,
        }),
        ..config(None)
    };
    let bank = Bank::from_clear_keys(&config.keys).expect("bank");
    let e = Issuer::start_with(config, bank, Arc::new(now))
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "issuer link TLS: read TLS certificate chain {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}
