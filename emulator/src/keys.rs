//! The emulator's RSA signing keys: generation, JWK and certificate forms, JWT signing (RS256).

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// One RSA-2048 signing key, its public JWK and its self-signed certificate (PEM).
pub(crate) struct SigningKey {
    kid: String,
    pair: KeyPair,
    jwk: Value,
    cert_pem: String,
}

impl SigningKey {
    /// Generates a key with a fresh random `kid`. CPU-heavy (tens of milliseconds).
    pub(crate) fn generate() -> Result<Self, Unspecified> {
        let pair = KeyPair::generate(KeySize::Rsa2048)?;
        let public = pair.public_key();
        let id = uuid::Uuid::new_v4();
        let kid = id.simple().to_string();
        let jwk = json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
        });
        let cert_pem = crate::x509::self_signed_pem(
            &pair,
            &format!("invoker metadata emulator {kid}"),
            id.as_bytes(),
            crate::now_secs(),
        )?;
        Ok(Self {
            kid,
            pair,
            jwk,
            cert_pem,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as a self-signed X.509 certificate, PEM.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The standard header for this key: `{"alg":"RS256","kid":…,"typ":"JWT"}`.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"})
    }

    /// `base64url(header).base64url(claims).base64url(RS256 signature)`, both given as is.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> Result<String, Unspecified> {
        let header = serde_json::to_vec(header).map_err(|_| Unspecified)?;
        let claims = serde_json::to_vec(claims).map_err(|_| Unspecified)?;
        let mut token = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            token.as_bytes(),
            &mut signature,
        )?;
        token.push('.');
        token.push_str(&B64.encode(signature));
        Ok(token)
    }
}
