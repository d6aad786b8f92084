// Drives DFINITY's ICP ledger client, @dfinity/ledger-icp 6.1.2 (with the JS agent 3.4.3),
// unchanged, against the protocols/icp/icptest emulator in ICP-ledger mode (ICP.md §7): account
// identifiers, accountBalance (query and certified), icrc1Transfer, and query_blocks /
// query_encoded_blocks / archives through the package's own ledger.did IDL, with the tip
// certificate verified by the JS agent and its certified data equal to the SHA-256 of the last
// encoded block. Prints "ok" and exits 0 when every check holds.
//
//   node check_icp.mjs <replica URL> <ledger canister ID> <32-byte seed hex> <recipient principal>
import { HttpAgent, Actor, Certificate } from '@dfinity/agent';
import { Principal } from '@dfinity/principal';
import { Ed25519KeyIdentity } from '@dfinity/identity';
import { LedgerCanister, AccountIdentifier, InsufficientFundsError } from '@dfinity/ledger-icp';
import { idlFactory } from '@dfinity/ledger-icp/dist/candid/ledger.idl.js';
import { sha256 } from '@noble/hashes/sha256';

const [url, ledgerText, seedHex, toText] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exit(1); };
const hex = (b) => Buffer.from(b).toString('hex');
const identity = Ed25519KeyIdentity.generate(Uint8Array.from(Buffer.from(seedHex, 'hex')));
const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
const canisterId = Principal.fromText(ledgerText);
const ledger = LedgerCanister.create({ agent, canisterId });

const mine = AccountIdentifier.fromPrincipal({ principal: identity.getPrincipal() });
const before = await ledger.accountBalance({ accountIdentifier: mine, certified: false });
if (before < 100000n) fail(`balance ${before} (the test mints 1000000)`);
const certified = await ledger.accountBalance({ accountIdentifier: mine.toHex(), certified: true });
if (certified !== before) fail(`certified balance ${certified} != query balance ${before}`);
const fee = await ledger.transactionFee();
if (fee !== 10000n) fail(`fee ${fee}`);

const to = Principal.fromText(toText);
const memo = new Uint8Array(32).fill(9);
const height = await ledger.icrc1Transfer({ to: { owner: to, subaccount: [] }, amount: 5000n, icrc1Memo: memo, createdAt: BigInt(Date.now()) * 1000000n });
const after = await ledger.accountBalance({ accountIdentifier: mine, certified: false });
if (after !== before - 5000n - fee) fail(`balance after ${after}, want ${before - 5000n - fee}`);
// The ICP ledger's own transfer, to an account identifier.
const toID0 = AccountIdentifier.fromPrincipal({ principal: to });
const before0 = await ledger.accountBalance({ accountIdentifier: toID0 });
const legacy = await ledger.transfer({ to: toID0, amount: 300n, memo: 42n });
if (legacy !== height + 1n) fail(`legacy transfer block ${legacy}, want ${height + 1n}`);
if (await ledger.accountBalance({ accountIdentifier: toID0 }) !== before0 + 300n) fail('legacy transfer did not credit the recipient');
try {
  await ledger.icrc1Transfer({ to: { owner: to, subaccount: [] }, amount: 10n ** 12n });
  fail('overspend accepted');
} catch (e) {
  if (!(e instanceof InsufficientFundsError)) fail(`overspend: ${e}`);
}

const raw = Actor.createActor(idlFactory, { agent, canisterId });
const qb = await raw.query_blocks({ start: height, length: 1n });
if (qb.blocks.length !== 1 || qb.first_block_index !== height) fail(`query_blocks ${JSON.stringify(qb, (_, v) => typeof v === 'bigint' ? v.toString() : v)}`);
const tx = qb.blocks[0].transaction;
const op = tx.operation[0];
const toID = AccountIdentifier.fromPrincipal({ principal: to });
if (!op || !op.Transfer || op.Transfer.amount.e8s !== 5000n || hex(op.Transfer.from) !== mine.toHex() || hex(op.Transfer.to) !== toID.toHex()) fail(`query_blocks transfer ${JSON.stringify(op, (_, v) => typeof v === 'bigint' ? v.toString() : v)}`);
if (tx.icrc1_memo.length !== 1 || hex(tx.icrc1_memo[0]) !== hex(memo)) fail('icrc1_memo');

const enc = await raw.query_encoded_blocks({ start: 0n, length: 1000n });
const last = enc.blocks[enc.blocks.length - 1];
if (enc.chain_length !== enc.first_block_index + BigInt(enc.blocks.length)) fail(`encoded blocks ${enc.first_block_index}+${enc.blocks.length} of ${enc.chain_length}`);
if (enc.archived_blocks.length !== 1 || enc.archived_blocks[0].start !== 0n) fail('archived_blocks');
const [archive, method] = enc.archived_blocks[0].callback;
const archives = await raw.archives();
if (archives.archives.length !== 1 || archives.archives[0].canister_id.toText() !== archive.toText() || method !== 'get_encoded_blocks') fail(`callback ${archive}.${method} not among archives`);
const archiveActor = Actor.createActor(({ IDL }) => {
  const QueryArchiveError = IDL.Variant({
    BadFirstBlockIndex: IDL.Record({ requested_index: IDL.Nat64, first_valid_index: IDL.Nat64 }),
    Other: IDL.Record({ error_code: IDL.Nat64, error_message: IDL.Text }),
  });
  return IDL.Service({ get_encoded_blocks: IDL.Func([IDL.Record({ start: IDL.Nat64, length: IDL.Nat64 })], [IDL.Variant({ Ok: IDL.Vec(IDL.Vec(IDL.Nat8)), Err: QueryArchiveError })], ['query']) });
}, { agent, canisterId: archive });
const archived = await archiveActor.get_encoded_blocks({ start: 0n, length: enc.archived_blocks[0].length });
if (!archived.Ok || archived.Ok.length !== Number(enc.archived_blocks[0].length)) fail('archive get_encoded_blocks');

if (enc.certificate.length !== 1) fail('no certificate');
const cert = await Certificate.create({ certificate: enc.certificate[0], rootKey: agent.rootKey, canisterId });
const data = cert.lookup_path(['canister', canisterId.toUint8Array(), 'certified_data']);
if (hex(data.value ?? data) !== hex(sha256(last))) fail(`certified data ${hex(data.value ?? data)} != sha256(last block) ${hex(sha256(last))}`);
console.log('ok');
