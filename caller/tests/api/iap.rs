//! People through Identity-Aware Proxy (issue 22), against the running chain: the IAP front
//! (as IAP on Cloud Run: the person's signed assertion, IAP's service agent's stripped token,
//! the unsigned `X-Goog-Authenticated-User-*`) → caller (platform mode, `AUTH_IAP_AUDIENCES`)
//! → called (verifies the forwarded assertion with IAP's rules). The person is the end user
//! all the way; IAP's service agent never is; every forged or misdirected assertion is 401,
//! a person not on the allow-list 403, IAP's key-set outage 503.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::checks::assert_problem;
use testkit::iap::{PERSON, SERVICE_AGENT, iap_chain, iap_chain_with};

const OTHER_SA: &str = "reporter@example-project.iam.gserviceaccount.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_through_iap_is_the_end_user_all_the_way() {
    let chain = iap_chain().await;
    let res = chain
        .post(Some(PERSON), &[], &json!({"foo": "hello"}))
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["on_behalf_of"], PERSON, "{body}");
    assert_eq!(
        body["caller"],
        chain.emu.sa(),
        "called saw the caller's own account"
    );
    assert_ne!(body["on_behalf_of"], SERVICE_AGENT);

    // A client cannot slip its own IAP headers past the front: they are replaced.
    let forged = chain.misuse("mallory@example.com").forged;
    let res = chain
        .post(
            Some(PERSON),
            &[
                ("x-goog-iap-jwt-assertion", &forged),
                (
                    "x-goog-authenticated-user-email",
                    "accounts.google.com:mallory@example.com",
                ),
            ],
            &json!({"foo": "again"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["on_behalf_of"], PERSON);

    // Nobody signed in: the front's own 401 (IAP would send to its sign-in page).
    let res = chain.post(None, &[], &json!({"foo": "x"})).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_iap_let_in_but_not_on_the_allow_list_is_403() {
    let chain = iap_chain().await;
    let res = chain
        .post(Some("bob@example.com"), &[], &json!({"foo": "hello"}))
        .await;
    let p = assert_problem(res, 403).await;
    assert!(p.detail.contains("bob@example.com"), "{}", p.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forged_or_misdirected_assertion_is_401_naming_the_header() {
    let chain = iap_chain().await;
    let agent = format!("Bearer {}", chain.service_agent_token());
    let body = json!({"foo": "hello"});
    let misuse = chain.misuse(PERSON);
    let mut cases: Vec<(&str, &str)> = misuse.cases().to_vec();
    cases.push(("stripped", &misuse.stripped));
    for (what, assertion) in cases {
        let res = chain
            .send_to_caller(
                Method::POST,
                "/",
                &[
                    ("x-serverless-authorization", &agent),
                    ("x-goog-iap-jwt-assertion", assertion),
                ],
                Some(&body),
            )
            .await;
        let p = assert_problem(res, 401).await;
        assert!(
            p.detail.contains("X-Goog-IAP-JWT-Assertion"),
            "{what}: {}",
            p.detail
        );
    }
    // No assertion at all, or only the unsigned copies: 401 — they are never read.
    for (what, headers) in [
        (
            "no assertion",
            vec![("x-serverless-authorization", agent.as_str())],
        ),
        (
            "a forged X-Goog-Authenticated-User-Email alone",
            vec![
                ("x-serverless-authorization", agent.as_str()),
                (
                    "x-goog-authenticated-user-email",
                    "accounts.google.com:alice@example.com",
                ),
                (
                    "x-goog-authenticated-user-id",
                    "accounts.google.com:1234567890",
                ),
            ],
        ),
    ] {
        let res = chain
            .send_to_caller(Method::POST, "/", &headers, Some(&body))
            .await;
        let p = assert_problem(res, 401).await;
        assert!(
            p.detail.contains("X-Goog-IAP-JWT-Assertion"),
            "{what}: {}",
            p.detail
        );
    }
    // A good assertion without the proof that Cloud Run's IAM check passed (platform mode).
    let res = chain
        .send_to_caller(
            Method::POST,
            "/",
            &[("x-goog-iap-jwt-assertion", &chain.assertion(PERSON))],
            Some(&body),
        )
        .await;
    assert_eq!(res.status(), 401);
    // …nor with a stripped token of someone other than IAP's service agent.
    let stranger = format!(
        "Bearer {}",
        testkit::claims::strip(&chain.emu.emulator.mint(
            "mallory@example.com",
            &chain.caller.base,
            Duration::from_secs(600)
        ))
    );
    let res = chain
        .send_to_caller(
            Method::POST,
            "/",
            &[
                ("x-serverless-authorization", &stranger),
                ("x-goog-iap-jwt-assertion", &chain.assertion(PERSON)),
            ],
            Some(&body),
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn called_verifies_a_forwarded_assertion_with_iaps_rules() {
    let sa_and_other = |sa: &str| format!("{sa},{OTHER_SA}");
    // called admits a second principal that is not a trusted forwarder.
    let probe = testkit::emu::Emu::start().await;
    let allowed = sa_and_other(&probe.sa());
    drop(probe);
    let chain = iap_chain_with(PERSON, &[], &[("AUTH_ALLOWED_PRINCIPALS", &allowed)]).await;
    let called = &chain.called.base;
    let client = reqwest::Client::new();
    let post = |token: String, forwarded: String| {
        client
            .post(format!("{called}/"))
            .bearer_auth(token)
            .header("x-forwarded-authorization", format!("Bearer {forwarded}"))
            .json(&json!({"bar": "direct"}))
            .send()
    };
    let emu = &chain.emu;
    let as_caller = emu.sa_token(called);
    // The trusted forwarder with the person's assertion: the person.
    let res = post(as_caller.clone(), chain.assertion(PERSON))
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.expect("json")["on_behalf_of"],
        PERSON
    );
    // An untrusted principal forwarding the same assertion: ignored.
    let other = emu
        .emulator
        .mint(OTHER_SA, called, Duration::from_secs(600));
    let res = post(other, chain.assertion(PERSON)).await.expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.expect("json")["on_behalf_of"],
        Value::Null
    );
    // An assertion for an audience called does not accept: 401.
    let elsewhere = emu.iap_assertion(PERSON, "/projects/1/global/backendServices/2");
    let res = post(as_caller.clone(), elsewhere).await.expect("post");
    assert_eq!(res.status(), 401);
    // Every misuse case, forwarded: 401.
    for (what, assertion) in chain.misuse(PERSON).cases() {
        let res = post(as_caller.clone(), assertion.to_owned())
            .await
            .expect("post");
        assert_eq!(res.status(), 401, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iap_key_set_outage_is_503_never_acceptance() {
    // The caller cannot reach IAP's key set at all: 503 with Retry-After, never a 201.
    let dead = format!(
        "http://127.0.0.1:{}/iap/verify/public_key-jwk",
        testkit::child::free_port()
    );
    let chain = iap_chain_with(PERSON, &[("AUTH_IAP_JWKS_URL", &dead)], &[]).await;
    let res = chain
        .post(Some(PERSON), &[], &json!({"foo": "hello"}))
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    // called has not needed IAP's keys yet when they go down: a forwarded assertion is 503
    // there too, and through the chain the person is never accepted.
    let chain = iap_chain().await;
    chain.emu.emulator.set_iap_keys_down(true);
    let called = &chain.called.base;
    let res = reqwest::Client::new()
        .post(format!("{called}/"))
        .bearer_auth(chain.emu.sa_token(called))
        .header(
            "x-forwarded-authorization",
            format!("Bearer {}", chain.assertion(PERSON)),
        )
        .json(&json!({"bar": "direct"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let res = chain
        .post(Some(PERSON), &[], &json!({"foo": "hello"}))
        .await;
    assert_ne!(res.status(), 201, "accepted without IAP's keys");
}
