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

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
