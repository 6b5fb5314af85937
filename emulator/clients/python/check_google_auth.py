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


passed = sum(results)
failed = len(results) - passed
print(f"python: {passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed else 0)
