// Prints the principal and ICP account identifier DFINITY's libraries derive from a dfx
// secp256k1 identity PEM (@dfinity/identity-secp256k1, @dfinity/ledger-icp), one per line.
//
//   node principal.mjs <identity.pem>
import { readFileSync } from 'node:fs';
import { Secp256k1KeyIdentity } from '@dfinity/identity-secp256k1';
import { AccountIdentifier } from '@dfinity/ledger-icp';

// fromPem takes the EC PRIVATE KEY block alone, so an EC PARAMETERS block before it is dropped.
const pem = readFileSync(process.argv[2], 'utf8');
const block = pem.slice(pem.indexOf('-----BEGIN EC PRIVATE KEY-----'));
const id = Secp256k1KeyIdentity.fromPem(block);
console.log(id.getPrincipal().toText());
console.log(AccountIdentifier.fromPrincipal({ principal: id.getPrincipal() }).toHex());
