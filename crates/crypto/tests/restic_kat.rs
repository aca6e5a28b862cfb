//! Known-answer test against a repository created by real restic (0.14.0).
//!
//! See `tests/fixtures/README.md` for how the fixtures were produced.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lifeboat_crypto::{derive_key, is_irreducible, CryptoError, KdfParams, Key};
use serde_json::Value;

const KEY_FILE: &str = include_str!("fixtures/restic-key.json");
const CONFIG_FILE: &[u8] = include_bytes!("fixtures/restic-config");
const PASSWORD: &[u8] = b"kat-password";

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("base64 string")).expect("valid base64")
}

fn array<const N: usize>(v: &Value) -> [u8; N] {
    b64(v).try_into().expect("right length")
}

fn key_file() -> Value {
    serde_json::from_str(KEY_FILE).expect("key file JSON")
}

fn kdf_params(kf: &Value) -> KdfParams {
    let num = |name: &str| u32::try_from(kf[name].as_u64().expect(name)).expect(name);
    KdfParams { n: num("N"), r: num("r"), p: num("p") }
}

fn master_key() -> Key {
    let kf = key_file();
    assert_eq!(kf["kdf"], "scrypt");
    let user_key = derive_key(PASSWORD, &b64(&kf["salt"]), kdf_params(&kf)).expect("scrypt");
    let master_json = user_key.decrypt(&b64(&kf["data"])).expect("key data decrypts");
    let master: Value = serde_json::from_slice(&master_json).expect("master key JSON");
    Key::from_parts(array(&master["encrypt"]), array(&master["mac"]["k"]), array(&master["mac"]["r"]))
}

#[test]
fn restic_key_file_and_config() {
    let key = master_key();
    let config_json = key.decrypt(CONFIG_FILE).expect("config decrypts");
    let config: Value = serde_json::from_slice(&config_json).expect("config JSON");
    assert_eq!(config["version"], 2);
    assert!(config["id"].as_str().is_some_and(|id| id.len() == 64));
    let pol = u64::from_str_radix(config["chunker_polynomial"].as_str().expect("chunker_polynomial"), 16)
        .expect("hex polynomial");
    assert_eq!(63 - pol.leading_zeros(), 53, "{pol:#x}");
    assert!(is_irreducible(pol), "{pol:#x}");

    // Our own ciphertexts under restic's key decrypt again (the MAC layout matches).
    let again = key.encrypt(&config_json);
    assert_eq!(key.decrypt(&again).expect("round trip"), config_json);

    // Any flipped byte (IV, body or MAC) is rejected.
    for i in [0, 15, 16, CONFIG_FILE.len() / 2, CONFIG_FILE.len() - 17, CONFIG_FILE.len() - 1] {
        let mut bad = CONFIG_FILE.to_vec();
        bad[i] ^= 0x04;
        assert!(matches!(key.decrypt(&bad), Err(CryptoError::Mac)), "flip at {i} accepted");
    }
    assert!(matches!(key.decrypt(&CONFIG_FILE[..31]), Err(CryptoError::TooShort { len: 31 })));
}

#[test]
fn wrong_password_fails_mac() {
    let kf = key_file();
    let user_key = derive_key(b"not-the-password", &b64(&kf["salt"]), kdf_params(&kf)).expect("scrypt");
    assert!(matches!(user_key.decrypt(&b64(&kf["data"])), Err(CryptoError::Mac)));
}
