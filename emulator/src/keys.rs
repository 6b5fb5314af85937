//! The emulator's signing keys: RSA for Google ID tokens (JWK and certificate forms, RS256) and
//! P-256 for IAP signed-header assertions (JWK and PEM public-key forms, ES256).

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
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

/// One P-256 key as IAP signs its assertions with: its public JWK (`kty` `EC`, `crv` `P-256`,
/// `alg` `ES256`) and its public key as PEM `SubjectPublicKeyInfo`, the two forms Google serves
/// at `…/iap/verify/public_key-jwk` and `…/iap/verify/public_key`.
pub(crate) struct IapKey {
    kid: String,
    pair: EcdsaKeyPair,
    jwk: Value,
    pem: String,
}

impl IapKey {
    /// Generates a key with a fresh random `kid` (cheap: well under a millisecond).
    pub(crate) fn generate() -> Result<Self, Unspecified> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(Unspecified),
        };
        // IAP's kids are short opaque strings; a prefix tells them apart from the RSA kids.
        let kid = format!("iap-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": kid,
            "x": B64.encode(x),
            "y": B64.encode(y),
        });
        let spki: PublicKeyX509Der<'static> = pair.public_key().as_der()?;
        let pem = crate::x509::pem("PUBLIC KEY", spki.as_ref());
        Ok(Self {
            kid,
            pair,
            jwk,
            pem,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as PEM `SubjectPublicKeyInfo` (`-----BEGIN PUBLIC KEY-----`).
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// IAP's header for this key: `{"alg":"ES256","kid":…,"typ":"JWT"}`.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"})
    }

    /// `base64url(header).base64url(claims).base64url(r || s)` (JOSE's fixed-size ECDSA form).
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> Result<String, Unspecified> {
        let header = serde_json::to_vec(header).map_err(|_| Unspecified)?;
        let claims = serde_json::to_vec(claims).map_err(|_| Unspecified)?;
        let mut token = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let signature = self.pair.sign(&SystemRandom::new(), token.as_bytes())?;
        token.push('.');
        token.push_str(&B64.encode(signature.as_ref()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn iap_key_signs_es256_that_its_jwk_verifies() {
        let key = IapKey::generate().expect("key");
        let token = key
            .sign(&key.header(), &json!({"email": "a@example.com"}))
            .expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let signature = B64.decode(parts[2]).expect("b64");
        assert_eq!(signature.len(), 64, "r || s, not DER");
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["kid"], key.kid());
        let mut point = vec![0x04];
        for c in ["x", "y"] {
            let b = B64
                .decode(jwk[c].as_str().expect("coordinate"))
                .expect("b64");
            assert_eq!(b.len(), 32, "{c}");
            point.extend(b);
        }
        let message = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(message.as_bytes(), &signature)
            .expect("the JWK's point verifies the signature");
        let other = IapKey::generate().expect("key");
        assert_ne!(other.kid(), key.kid());
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, other.pair.public_key().as_ref())
                .verify(message.as_bytes(), &signature)
                .is_err()
        );
        assert!(
            key.pem().starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{}",
            key.pem()
        );
        assert!(key.pem().ends_with("-----END PUBLIC KEY-----\n"));
    }
}
