"""Google's Python auth library (google-auth) against the invoker metadata-server emulator.

Run by scripts/google-clients.sh with only environment variables pointing the library at the
emulator: GCE_METADATA_HOST and GCE_METADATA_IP (host:port of the emulator), plus for this
check CALLED_URL (a running `called` that accepts the emulator's service account) and
EMULATOR_URL. Every library call is one named check printing PASS or FAIL; the README quotes
the blocks between `# [snippet …]` markers verbatim (the script checks they match).
"""

import os
import sys
import traceback

CALLED_URL = os.environ["CALLED_URL"]
EMULATOR_URL = os.environ["EMULATOR_URL"]
AUDIENCE = CALLED_URL
SERVICE_ACCOUNT = os.environ["EXPECTED_SERVICE_ACCOUNT"]
# IAP on a Cloud Run service: /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE.
IAP_AUDIENCE = "/projects/000000000000/locations/local/services/caller"
IAP_PERSON = "alice@example.com"

results = []


def check(name):
    def run(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            results.append(False)
            print(f"FAIL python: {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
        else:
            results.append(True)
            print(f"PASS python: {name}", flush=True)
        return fn

    return run


def post_to_called(token):
    import requests

    return requests.post(
        CALLED_URL + "/",
        json={"bar": "from python google-auth"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def expect_201(response):
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    assert response.json()["caller"] == SERVICE_ACCOUNT, response.text


@check("google.auth.default() finds the metadata server, project and an access token")
def _default():
    # [snippet python-default]
    import google.auth
    import google.auth.transport.requests

    credentials, project = google.auth.default()
    credentials.refresh(google.auth.transport.requests.Request())
    # [/snippet]
    assert project == "invoker-local", project
    assert credentials.token.startswith("ya29.emulator-"), credentials.token[:20]
    assert credentials.service_account_email == SERVICE_ACCOUNT


@check("id_token.fetch_id_token(request, aud) -> called answers 201")
def _fetch_id_token():
    # [snippet python-fetch-id-token]
    import google.auth.transport.requests
    import requests
    from google.oauth2 import id_token

    request = google.auth.transport.requests.Request()
    token = id_token.fetch_id_token(request, AUDIENCE)
    response = requests.post(
        CALLED_URL + "/",
        json={"bar": "hello"},
        headers={"Authorization": f"Bearer {token}"},
    )
    # [/snippet]
    expect_201(response)


@check("compute_engine.IDTokenCredentials(use_metadata_identity_endpoint=True) -> 201")
def _id_token_credentials():
    import google.auth.transport.requests
    from google.auth import compute_engine

    request = google.auth.transport.requests.Request()
    credentials = compute_engine.IDTokenCredentials(
        request, AUDIENCE, use_metadata_identity_endpoint=True
    )
    credentials.refresh(request)
    assert credentials.service_account_email == SERVICE_ACCOUNT
    expect_201(post_to_called(credentials.token))


@check("compute_engine.Credentials().refresh() -> an access token called refuses")
def _access_token():
    import google.auth.transport.requests
    from google.auth import compute_engine

    credentials = compute_engine.Credentials()
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token.startswith("ya29.emulator-"), credentials.token[:20]
    assert credentials.expiry is not None
    assert credentials.scopes == ["https://www.googleapis.com/auth/cloud-platform"]
    response = post_to_called(credentials.token)
    assert response.status_code == 401, f"an access token is no identity: {response.status_code}"


@check("_metadata.ping(request) with GCE_METADATA_IP set")
def _ping():
    import google.auth.transport.requests
    from google.auth.compute_engine import _metadata

    request = google.auth.transport.requests.Request()
    assert _metadata.ping(request) is True
    assert _metadata.is_on_gce(request) is True
    assert _metadata.get_project_id(request) == "invoker-local"
    assert _metadata.get_universe_domain(request) == "googleapis.com"
    info = _metadata.get_service_account_info(request)
    assert info == {
        "aliases": ["default"],
        "email": SERVICE_ACCOUNT,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }, info


def fresh_token():
    import google.auth.transport.requests
    from google.oauth2 import id_token

    return id_token.fetch_id_token(google.auth.transport.requests.Request(), AUDIENCE)


@check("id_token.verify_token(certs_url=<emulator>/oauth2/v3/certs) (JWKS)")
def _verify_jwks():
    token = fresh_token()
    # [snippet python-verify]
    import google.auth.transport.requests
    from google.oauth2 import id_token

    claims = id_token.verify_token(
        token,
        google.auth.transport.requests.Request(),
        audience=AUDIENCE,
        certs_url=EMULATOR_URL + "/oauth2/v3/certs",  # or /oauth2/v1/certs (PEM)
    )
    # [/snippet]
    assert claims["email"] == SERVICE_ACCOUNT, claims


@check("id_token.verify_token(certs_url=<emulator>/oauth2/v1/certs) (PEM certificates)")
def _verify_pem():
    import google.auth.transport.requests
    from google.oauth2 import id_token

    claims = id_token.verify_token(
        fresh_token(),
        google.auth.transport.requests.Request(),
        audience=AUDIENCE,
        certs_url=EMULATOR_URL + "/oauth2/v1/certs",
    )
    assert claims["email"] == SERVICE_ACCOUNT, claims


@check("id_token.verify_oauth2_token (Google's v1 certs URL served by the emulator)")
def _verify_oauth2_token():
    import google.auth.transport.requests
    from google.oauth2 import id_token

    # verify_oauth2_token has Google's certificate URL built in (no setting changes it): give it
    # a transport that sends that one URL to the emulator, which serves the same PEM map.
    class EmulatorCerts(google.auth.transport.requests.Request):
        def __call__(self, url, *args, **kwargs):
            if url == "https://www.googleapis.com/oauth2/v1/certs":
                url = EMULATOR_URL + "/oauth2/v1/certs"
            return super().__call__(url, *args, **kwargs)

    claims = id_token.verify_oauth2_token(fresh_token(), EmulatorCerts(), audience=AUDIENCE)
    assert claims["email"] == SERVICE_ACCOUNT, claims


def iap_assertion(**fields):
    """An IAP signed-header assertion minted by the emulator (POST /emulator/iap/assertion)."""
    import requests

    body = {"email": IAP_PERSON, "audience": IAP_AUDIENCE, "hd": "example.com", **fields}
    response = requests.post(EMULATOR_URL + "/emulator/iap/assertion", json=body, timeout=10)
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.json()["assertion"]


def expect_refused(fn, why):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - google-auth raises ValueError and its subclasses
        assert why in str(e).lower(), f"refused, but not for its {why}: {e}"
    else:
        raise AssertionError(f"accepted an assertion with the wrong {why}")


@check("IAP: id_token.verify_token(certs_url=<emulator>/iap/verify/public_key) as Google's sample")
def _verify_iap_pem():
    iap_jwt = iap_assertion()
    import google.auth.transport.requests
    from google.oauth2 import id_token

    # Google's IAP sample, with the emulator's URL in place of https://www.gstatic.com.
    decoded_jwt = id_token.verify_token(
        iap_jwt,
        google.auth.transport.requests.Request(),
        audience=IAP_AUDIENCE,
        certs_url=EMULATOR_URL + "/iap/verify/public_key",
    )
    assert decoded_jwt["email"] == IAP_PERSON, decoded_jwt
    assert decoded_jwt["iss"] == "https://cloud.google.com/iap", decoded_jwt
    assert decoded_jwt["sub"].startswith("accounts.google.com:"), decoded_jwt
    assert decoded_jwt["hd"] == "example.com", decoded_jwt
    assert decoded_jwt["exp"] - decoded_jwt["iat"] == 600, decoded_jwt


@check("IAP: id_token.verify_token(certs_url=<emulator>/iap/verify/public_key-jwk) (JWKS)")
def _verify_iap_jwks():
    import google.auth.transport.requests
    from google.oauth2 import id_token

    decoded_jwt = id_token.verify_token(
        iap_assertion(),
        google.auth.transport.requests.Request(),
        audience=IAP_AUDIENCE,
        certs_url=EMULATOR_URL + "/iap/verify/public_key-jwk",
    )
    assert decoded_jwt["email"] == IAP_PERSON, decoded_jwt


@check("IAP: verify_token refuses a wrong audience and an expired assertion")
def _verify_iap_refusals():
    import time

    import google.auth.transport.requests
    from google.oauth2 import id_token

    def verify(token, audience=IAP_AUDIENCE):
        return id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience=audience,
            certs_url=EMULATOR_URL + "/iap/verify/public_key",
        )

    good = iap_assertion()
    expect_refused(
        lambda: verify(good, audience="/projects/000000000000/global/backendServices/1"),
        "audience",
    )
    expired = iap_assertion(issued_at=int(time.time()) - 7200)
    expect_refused(lambda: verify(expired), "expired")


passed = sum(results)
failed = len(results) - passed
print(f"python: {passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed else 0)
