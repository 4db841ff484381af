//! A panic in the engine (a bug: no input should cause one) cannot take the node down:
//! the driver catches it, logs and counts it, rebuilds the engine (`Core::reload`) and
//! runs its recovery, and the node goes on serving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cardsec::{
    EncryptedPinBlock, Key, KeyKind, KeyLayout, Pan, PanToken, Pin, SecError, SecurityModule,
    WorkingKeys, WrappedKey,
};
use gateway::{Core, GatewayStats};
use iso8583::frame::{encode_frame, CupEnvelope};
use iso8583::{Dialect, Message, Mti};
use store::{Journal, JournalConfig, MerchantRow, TerminalRow};

use crate::harness::{config, engine, test_hsm, within, Gateway, Seen, Term, PROMPT};

const TID: &str = "00000001";
const MID: &str = "123456789012345";
const TMK: &str = "70F2A84CCBC2AE8625CBB0F2C22AB923";

/// A security module that panics once, at the first sign-on after it is armed: a
/// stand-in for any bug deep in the engine's path.
struct Booby {
    inner: Arc<dyn SecurityModule>,
    armed: Arc<AtomicBool>,
}

impl SecurityModule for Booby {
    fn import_key(&self, kind: KeyKind, version: u32, clear: &Key) -> Result<WrappedKey, SecError> {
        self.inner.import_key(kind, version, clear)
    }
    fn generate_key(
        &self,
        kind: KeyKind,
        version: u32,
        len: usize,
    ) -> Result<WrappedKey, SecError> {
        self.inner.generate_key(kind, version, len)
    }
    fn generate_working_keys(
        &self,
        tmk: &WrappedKey,
        layout: KeyLayout,
        version: u32,
    ) -> Result<WorkingKeys, SecError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("a bug in the key path");
        }
        self.inner.generate_working_keys(tmk, layout, version)
    }
    fn generate_mac(
        &self,
        key: &WrappedKey,
        alg: cardsec::MacAlgorithm,
        data: &[u8],
    ) -> Result<[u8; 8], SecError> {
        self.inner.generate_mac(key, alg, data)
    }
    fn translate_pin(
        &self,
        tpk: &WrappedKey,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecError> {
        self.inner.translate_pin(tpk, zpk, pan, block)
    }
    fn pin_verification_value(&self, pan: &Pan, pin: &Pin) -> String {
        self.inner.pin_verification_value(pan, pin)
    }
    fn verify_pin(
        &self,
        zpk: &WrappedKey,
        pan: &Pan,
        block: &EncryptedPinBlock,
        pvv: &str,
    ) -> Result<bool, SecError> {
        self.inner.verify_pin(zpk, pan, block, pvv)
    }
    fn tokenize(&self, pan: &Pan) -> PanToken {
        self.inner.tokenize(pan)
    }
    fn tokenize_under(&self, pan: &Pan, key_id: u16) -> Option<PanToken> {
        self.inner.tokenize_under(pan, key_id)
    }
    fn install_token_key(&self, key: &WrappedKey) -> Result<(), SecError> {
        self.inner.install_token_key(key)
    }
    fn decrypt_track(
        &self,
        tdk: &WrappedKey,
        encrypted: &str,
    ) -> Result<cardsec::Track2, SecError> {
        self.inner.decrypt_track(tdk, encrypted)
    }
}

fn rows(hsm: &dyn SecurityModule) -> (Vec<MerchantRow>, Vec<TerminalRow>) {
    let at = "2026-01-01T00:00:00+00:00".to_owned();
    let tmk = hsm
        .import_key(KeyKind::Tmk, 1, &Key::from_hex(TMK).expect("tmk"))
        .expect("import");
    let merchant = MerchantRow {
        merchant_id: MID.into(),
        name: "Supervised Shop".into(),
        city: "Shanghai".into(),
        mcc: "5411".into(),
        status: "active".into(),
        created_at: at.clone(),
        merchant_class: "standard".into(),
        risk_class: "low".into(),
    };
    let terminal = TerminalRow {
        terminal_id: TID.into(),
        merchant_id: MID.into(),
        status: "active".into(),
        tmk: tmk.to_text(),
        pik: None,
        mak: None,
        mak_prev: None,
        key_version: 0,
        batch: 1,
        signed_on: false,
        install_location: String::new(),
        updated_at: at,
        key_profile: "003".into(),
        pending_pik: None,
        pending_mak: None,
        tdk: None,
        pending_tdk: None,
    };
    (vec![merchant], vec![terminal])
}

fn sign_on() -> Vec<u8> {
    let mut m = Message::new(Mti::lit("0800"));
    m.set(11, "000001")
        .set(41, TID)
        .set(42, MID)
        .set(60, "00000001003");
    let packed = Dialect::cup_pos().pack(&m).expect("pack");
    let mut body = Vec::new();
    CupEnvelope {
        tpdu: iso8583::frame::Tpdu::from_bytes([0x60, 0x00, 0x03, 0x00, 0x00]),
        header: iso8583::frame::CupHeader([0x60, 0x32, 0x10, 0x32, 0x00, 0x72]),
        message: &packed,
    }
    .write(&mut body);
    let mut framed = Vec::new();
    encode_frame(&body, 8192, &mut framed).expect("frame");
    framed
}

fn response_code(frame: &[u8]) -> String {
    let env = CupEnvelope::split(frame).expect("envelope");
    let m = Dialect::cup_pos().unpack(env.message).expect("reply");
    m.get_str(39).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_engine_is_survived_and_the_node_keeps_serving() {
    let armed = Arc::new(AtomicBool::new(false));
    let reloads = Arc::new(AtomicUsize::new(0));
    let (a, r) = (armed.clone(), reloads.clone());
    let gw = Gateway::start_core("supervision", config(), move |dir| {
        let _ = std::fs::remove_dir_all(dir);
        let hsm: Arc<dyn SecurityModule> = Arc::new(Booby {
            inner: test_hsm(),
            armed: a,
        });
        let (m, t) = rows(hsm.as_ref());
        let mut backend = store::open(&dir.display().to_string()).expect("open store");
        backend.migrate().expect("migrate");
        let writes: Vec<store::Write> = m
            .iter()
            .cloned()
            .map(store::Write::Merchant)
            .chain(t.iter().cloned().map(store::Write::Terminal))
            .collect();
        backend.apply(&writes).expect("the merchant and terminal");
        Core {
            engine: engine(hsm.clone(), m.clone(), t.clone()),
            journal: Journal::start(backend, JournalConfig::default()),
            pending_saf: Vec::new(),
            sweeper: None,
            // The test's engine keeps nothing in the store worth reloading: a fresh
            // one over the same rows stands for `posguard::node::load_engine`.
            reload: Some(Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
                Ok((engine(hsm.clone(), m.clone(), t.clone()), Vec::new()))
            })),
            keys: None,
            rules: None,
            status: None,
        }
    })
    .await;
    let mut term = Term::connect(gw.cup).await;
    assert_eq!(response_code(&term.round_trip(&sign_on()).await), "00");
    armed.store(true, Ordering::SeqCst);
    assert!(term.send(&sign_on()).await, "written");
    // The request that hit the bug gets no reply (its terminal times out and tries
    // again, as terminals do); the node does not die.
    assert_eq!(
        term.watch(std::time::Duration::from_millis(500)).await,
        Seen::Open
    );
    within(PROMPT, "the engine is rebuilt", async {
        while gw.count(|s: &GatewayStats| &s.engine_restarts) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
    assert_eq!(response_code(&term.round_trip(&sign_on()).await), "00");
    let mut other = Term::connect(gw.cup).await;
    assert_eq!(response_code(&other.round_trip(&sign_on()).await), "00");
    gw.stop().await;
}
