// A certified OpenID provider for MedMemory's auth tests: node-oidc-provider
// on 127.0.0.1:$PORT, issuer http://127.0.0.1:$PORT.
//
// Environment:
//   PORT      the port (the issuer URL depends on it, so restarts reuse it)
//   AUDIENCE  the API's audience (resource indicator); default below
//   ALG       RS256 (default), PS256 or ES256: the signing key made at start
//   KID       the key id; default random, so a restart rotates the key
//   TTL       access token lifetime in seconds; default 300
//
// Clients: `service` / `service-secret` (client credentials) and `web`
// (public, authorization code + PKCE, redirect http://127.0.0.1/callback).
// Interactions complete on their own: the account named by `login_hint`
// (default `alice`) logs in and consents to `openid api`.
//
// Prints `listening <issuer>` on stdout once it serves.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9400);
const issuer = `http://127.0.0.1:${port}`;
const audience = process.env.AUDIENCE || 'https://api.medmemory.test';
const alg = process.env.ALG || 'RS256';
const kid = process.env.KID || randomUUID();
const ttl = Number(process.env.TTL || 300);

const { privateKey } =
  alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };

const configuration = {
  clients: [
    {
      client_id: 'service',
      client_secret: 'service-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
    {
      client_id: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'api'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: 'api',
        audience: resourceIndicator,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'],
  },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['medmemory-test-cookie-key'] },
  ttl: { AccessToken: ttl, ClientCredentials: ttl },
};

const provider = new Provider(issuer, configuration);

// Complete every interaction at once: log in, then grant what was asked.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) {
    return next();
  }
  const { prompt, params, session } = await provider.interactionDetails(ctx.req, ctx.res);
  if (process.env.DEBUG_INTERACTIONS) console.error(JSON.stringify({ prompt, params, session }));
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: params.login_hint || 'alice' } };
  } else {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope || 'openid');
    grant.addResourceScope(params.resource || audience, 'api');
    result = { consent: { grantId: await grant.save() } };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer} kid=${kid} alg=${alg}`);
});
