// Google's Node libraries (google-auth-library, gcp-metadata) against the invoker
// metadata-server emulator.
//
// Run by scripts/google-clients.sh with only GCE_METADATA_HOST (host:port of the emulator)
// pointing the libraries at it (no K_SERVICE, no METADATA_SERVER_DETECTION), plus for this check
// CALLED_URL (a running `called` that accepts the emulator's service account) and EMULATOR_URL.
// Every library call is one named check printing PASS or FAIL; the README quotes the blocks
// between `// [snippet …]` markers verbatim (the script checks they match).

import assert from 'node:assert/strict';
import * as gcpMetadata from 'gcp-metadata';
import {GoogleAuth, OAuth2Client} from 'google-auth-library';

const CALLED_URL = process.env.CALLED_URL;
const EMULATOR_URL = process.env.EMULATOR_URL;
const AUDIENCE = CALLED_URL;
const SERVICE_ACCOUNT = process.env.EXPECTED_SERVICE_ACCOUNT;
// IAP on a Cloud Run service: /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE.
const IAP_AUDIENCE = '/projects/000000000000/locations/local/services/caller';
const IAP_PERSON = 'alice@example.com';

/** An IAP signed-header assertion minted by the emulator (POST /emulator/iap/assertion). */
async function iapAssertion(fields = {}) {
  const response = await fetch(`${EMULATOR_URL}/emulator/iap/assertion`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({email: IAP_PERSON, audience: IAP_AUDIENCE, ...fields}),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).assertion;
}

const results = [];

async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`PASS node: ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL node: ${name}: ${e && e.message}`);
    console.error(e);
  }
}

await check('gcp-metadata isAvailable() with only GCE_METADATA_HOST', async () => {
  assert.equal(await gcpMetadata.isAvailable(), true);
});

await check('GoogleAuth().getIdTokenClient(aud) -> client.request POST to called: 201', async () => {
  // [snippet node-id-token]
  const auth = new GoogleAuth();
  const client = await auth.getIdTokenClient(AUDIENCE);
  const response = await client.request({
    url: `${CALLED_URL}/`,
    method: 'POST',
    data: {bar: 'hello'},
  });
  // [/snippet]
  assert.equal(response.status, 201);
  assert.equal(response.data.caller, SERVICE_ACCOUNT);
});

await check('GoogleAuth().getAccessToken() -> an access token called refuses', async () => {
  const auth = new GoogleAuth();
  const token = await auth.getAccessToken();
  assert.match(token, /^ya29\.emulator-/);
  const response = await fetch(`${CALLED_URL}/`, {
    method: 'POST',
    headers: {authorization: `Bearer ${token}`, 'content-type': 'application/json'},
    body: JSON.stringify({bar: 'an access token is no identity'}),
  });
  assert.equal(response.status, 401);
});

await check('OAuth2Client.verifyIdToken against the emulator PEM certificates', async () => {
  const idToken = await (await new GoogleAuth().getIdTokenClient(AUDIENCE)).idTokenProvider
    .fetchIdToken(AUDIENCE);
  // [snippet node-verify]
  const verifier = new OAuth2Client({
    endpoints: {oauth2FederatedSignonPemCertsUrl: `${EMULATOR_URL}/oauth2/v1/certs`},
  });
  const ticket = await verifier.verifyIdToken({idToken, audience: AUDIENCE});
  // [/snippet]
  assert.equal(ticket.getPayload().email, SERVICE_ACCOUNT);
  assert.equal(ticket.getPayload().email_verified, true);
});

await check('gcp-metadata instance() lists the instance directory', async () => {
  const listing = await gcpMetadata.instance();
  assert.equal(typeof listing, 'string');
  assert.match(listing, /^service-accounts\/$/m);
  const accounts = await gcpMetadata.instance({
    property: 'service-accounts/',
    params: {recursive: 'true'},
  });
  assert.equal(accounts.default.email, SERVICE_ACCOUNT);
  assert.equal(await gcpMetadata.instance('service-accounts/default/email'), SERVICE_ACCOUNT);
});

await check("gcp-metadata project('numeric-project-id') and project('project-id')", async () => {
  assert.equal(Number(await gcpMetadata.project('numeric-project-id')), 123456789012);
  assert.equal(await gcpMetadata.project('project-id'), 'invoker-local');
});

await check("gcp-metadata instance('zone'), instance('region')", async () => {
  assert.match(await gcpMetadata.instance('zone'), /^projects\/\d+\/zones\/[a-z0-9-]+$/);
  assert.match(await gcpMetadata.instance('region'), /^projects\/\d+\/regions\/[a-z0-9-]+$/);
});

await check("gcp-metadata universe('universe-domain')", async () => {
  assert.equal(await gcpMetadata.universe('universe-domain'), 'googleapis.com');
});

await check("IAP: getIapPublicKeys + verifySignedJwtWithCertsAsync as Google's sample", async () => {
  const iapJwt = await iapAssertion();
  // Google's IAP sample, with the emulator's key URL in place of https://www.gstatic.com's.
  const oAuth2Client = new OAuth2Client({
    endpoints: {oauth2IapPublicKeyUrl: `${EMULATOR_URL}/iap/verify/public_key`},
  });
  const response = await oAuth2Client.getIapPublicKeys();
  const ticket = await oAuth2Client.verifySignedJwtWithCertsAsync(
    iapJwt,
    response.pubkeys,
    IAP_AUDIENCE,
    ['https://cloud.google.com/iap'],
  );
  assert.equal(ticket.getPayload().email, IAP_PERSON);
  assert.match(ticket.getPayload().sub, /^accounts\.google\.com:\d+$/);
  await assert.rejects(
    oAuth2Client.verifySignedJwtWithCertsAsync(
      iapJwt,
      response.pubkeys,
      '/projects/000000000000/global/backendServices/1',
      ['https://cloud.google.com/iap'],
    ),
    /audience/i,
  );
  const foreign = await iapAssertion({issued_at: Math.floor(Date.now() / 1000)});
  await assert.rejects(
    oAuth2Client.verifySignedJwtWithCertsAsync(foreign, response.pubkeys, IAP_AUDIENCE, [
      'https://accounts.google.com',
    ]),
    /issuer/i,
  );
});

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
