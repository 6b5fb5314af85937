//! Self-signed X.509 certificates for the emulator's RSA keys: the PEM form of the key set that
//! Google serves at `/oauth2/v1/certs` (Node's `OAuth2Client.verifyIdToken` and Python's
//! `verify_oauth2_token` read only that form).
//!
//! A certificate here is only a container for the public key (verifiers take the key and check
//! the JWT signature with it), so a minimal DER encoder is enough: no X.509 crate, no new
//! dependency. The certificate is still well formed and correctly self-signed.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// `sha256WithRSAEncryption` (1.2.840.113549.1.1.11).
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
/// `commonName` (2.5.4.3).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// How long a certificate is valid: one year from its key's creation (verifiers of ID tokens
/// do not check it; it only has to be plausible).
const VALIDITY_SECS: u64 = 365 * 86_400;

/// A PEM `CERTIFICATE` for `pair`'s public key, self-signed, subject and issuer
/// `CN=<common_name>`, serial from `serial`, valid from an hour before `now_secs` for a year.
pub(crate) fn self_signed_pem(
    pair: &KeyPair,
    common_name: &str,
    serial: &[u8],
    now_secs: u64,
) -> Result<String, Unspecified> {
    let der = self_signed_der(pair, common_name, serial, now_secs)?;
    Ok(pem("CERTIFICATE", &der))
}

fn self_signed_der(
    pair: &KeyPair,
    common_name: &str,
    serial: &[u8],
    now_secs: u64,
) -> Result<Vec<u8>, Unspecified> {
    let spki: PublicKeyX509Der<'static> = pair.public_key().as_der()?;
    let algorithm = sequence(&[&tlv(0x06, SHA256_WITH_RSA), &tlv(0x05, &[])]);
    let name = sequence(&[&tlv(
        0x31,
        &sequence(&[&tlv(0x06, COMMON_NAME), &tlv(0x0c, common_name.as_bytes())]),
    )]);
    let not_before = now_secs.saturating_sub(3600);
    let validity = sequence(&[&time(not_before), &time(not_before + VALIDITY_SECS)]);
    let tbs = sequence(&[
        &tlv(0xa0, &tlv(0x02, &[2])), // [0] EXPLICIT version v3
        &integer(serial),
        &algorithm,
        &name,
        &validity,
        &name,
        spki.as_ref(),
    ]);
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &tbs,
        &mut signature,
    )?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    Ok(sequence(&[&tbs, &algorithm, &tlv(0x03, &bits)]))
}

/// PEM armour: base64 in 64-character lines.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A positive DER INTEGER from big-endian bytes (leading zeros dropped, a zero added when the
/// high bit is set).
fn integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    tlv(0x02, &content)
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5).
fn time(unix_secs: u64) -> Vec<u8> {
    let (year, month, day) = civil_from_days(unix_secs / 86_400);
    let secs = unix_secs % 86_400;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if (1950..2050).contains(&year) {
        let text = format!("{:02}{month:02}{day:02}{h:02}{m:02}{s:02}Z", year % 100);
        tlv(0x17, text.as_bytes())
    } else {
        let text = format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}Z");
        tlv(0x18, text.as_bytes())
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_der_lengths() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(time(0), tlv(0x17, b"700101000000Z"));
        assert_eq!(time(2_524_608_000), tlv(0x18, b"20500101000000Z"));
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(integer(&[0x00, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0x00, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(&[]), [0x02, 0x01, 0x00]);
    }

    /// OpenSSL (when installed) parses the certificate and checks its self-signature.
    #[test]
    fn openssl_accepts_the_certificate() {
        let pair = KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("key");
        let pem = self_signed_pem(&pair, "emulator test", &[0xab; 16], 1_800_000_000)
            .expect("certificate");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        let dir = std::env::temp_dir().join(format!("emu-x509-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("cert.pem");
        std::fs::write(&path, &pem).expect("write");
        let Ok(out) = std::process::Command::new("openssl")
            .args(["verify", "-attime", "1800000000", "-CAfile"])
            .arg(&path)
            .arg(&path)
            .output()
        else {
            eprintln!("SKIPPED: openssl is not installed");
            return;
        };
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(": OK"), "{text}");
    }
}
