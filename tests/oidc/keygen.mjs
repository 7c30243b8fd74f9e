// Prints a fresh signing key for the in-process test issuer as JSON:
// {"der": base64 private key (RSA: PKCS#1, EC: PKCS#8), "jwk": public JWK}.
// Usage: node keygen.mjs RSA|EC|EC384 (EC: P-256, EC384: P-384)
import { generateKeyPairSync } from 'node:crypto';

const kind = process.argv[2] || 'RSA';
const { privateKey, publicKey } =
  kind === 'RSA'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: kind === 'EC384' ? 'P-384' : 'P-256' });
const der = privateKey.export({ type: kind === 'RSA' ? 'pkcs1' : 'pkcs8', format: 'der' });
console.log(JSON.stringify({ der: der.toString('base64'), jwk: publicKey.export({ format: 'jwk' }) }));
