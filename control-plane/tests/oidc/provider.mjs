// The OpenID Provider control-plane/tests/ui_oidc.rs signs in against: the
// certified npm package oidc-provider (deploy/tools/install-oidc-provider.sh),
// configured here and started with `node`.
//
//   OIDC_PROVIDER_DIR=<installer output> OIDC_PORT=<port> \
//   OIDC_REDIRECT_URL=<control plane>/login/oidc/callback node provider.mjs
//
// Prints "listening <issuer>" on stdout once it serves. Anyone may sign in
// with any password (the package's built-in development login page); the
// login name is the subject, and ACCOUNTS below gives the `groups` claim.
//
// Two test-only switches stand in for an attacker between the provider and
// the control plane, each for the next response only:
//   POST /test/tamper-state      the next authorization response carries a
//                                different `state` (the code stays valid);
//   POST /test/other-audience    the next token response carries an ID token
//                                issued for the client `other-app` (signed by
//                                this provider, same nonce and subject).
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const dir = process.env.OIDC_PROVIDER_DIR;
const port = Number(process.env.OIDC_PORT);
const redirectUrl = process.env.OIDC_REDIRECT_URL;
if (!dir || !port || !redirectUrl) {
  console.error('set OIDC_PROVIDER_DIR, OIDC_PORT and OIDC_REDIRECT_URL');
  process.exit(2);
}
const { default: Provider } = await import(
  pathToFileURL(join(dir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

const ACCOUNTS = {
  alice: ['corsair-admins', 'staff'],
  victor: ['corsair-viewers'],
  carol: ['corsair-viewers', 'corsair-approvers'],
  mallory: ['marketing'],
};

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'corsair',
      client_secret: 'corsair-test-secret',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    // Another relying party of the same provider: its ID tokens must not
    // open a session at the control plane.
    {
      client_id: 'other-app',
      client_secret: 'other-app-secret',
      redirect_uris: ['http://127.0.0.1:1/callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Claims requested by scope go into the ID token too (as Keycloak's and
  // Okta's group mappers do), not only to the UserInfo endpoint.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['corsair-test-provider-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.test`,
          email_verified: true,
          name: id,
          groups: ACCOUNTS[id] ?? [],
        };
      },
    };
  },
  // A first-party client: no consent page; the grant covers what it asks.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

let tamperState = false;
let otherAudience = false;
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/test/tamper-state') {
    tamperState = true;
    ctx.status = 204;
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/test/other-audience') {
    otherAudience = true;
    ctx.status = 204;
    return;
  }
  await next();
  const location = ctx.response.get('location');
  if (tamperState && location && location.startsWith(redirectUrl) && location.includes('code=')) {
    tamperState = false;
    const url = new URL(location);
    url.searchParams.set('state', `tampered-${url.searchParams.get('state')}`);
    ctx.redirect(url.href);
  }
  if (otherAudience && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    otherAudience = false;
    const payload = JSON.parse(
      Buffer.from(ctx.body.id_token.split('.')[1], 'base64url').toString(),
    );
    const other = await provider.Client.find('other-app');
    const { iat, exp, iss, aud, azp, at_hash, ...claims } = payload;
    const token = new provider.IdToken(claims, { ctx, client: other });
    token.scope = 'openid email profile groups';
    token.set('nonce', payload.nonce);
    ctx.body = { ...ctx.body, id_token: await token.issue({ use: 'idtoken' }) };
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
