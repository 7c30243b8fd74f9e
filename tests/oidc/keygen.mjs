// Prints a fresh signing key for the in-process test issuer as JSON:
// {"der": base64 private key (RSA: PKCS#1, EC: PKCS#8), "jwk": public JWK}.
// Usage: node keygen.mjs RSA|EC
import { generateKeyPairSync } from 'node:crypto';

const kind = process.argv[2] || 'RSA';
const { privateKey, publicKey } =
  kind === 'EC'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
const der = privateKey.export({ type: kind === 'EC' ? 'pkcs8' : 'pkcs1', format: 'der' });
console.log(JSON.stringify({ der: der.toString('base64'), jwk: publicKey.export({ format: 'jwk' }) }));
