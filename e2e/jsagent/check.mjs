// Drives DFINITY's JavaScript agent, unchanged, against the protocols/icp/icptest emulator
// (ICP.md §6): root key, signed queries, a sync v3 call with a verified certificate,
// deduplication, a typed error, and the certified ICRC-3 tip. Prints "ok" and exits 0 when every
// check holds.
//
//   node check.mjs <replica URL> <ledger canister ID> <32-byte seed hex> <recipient principal>
import { HttpAgent, Actor, Certificate, Cbor, reconstruct, LookupPathStatus } from '@dfinity/agent';
import { Principal } from '@dfinity/principal';
import { Ed25519KeyIdentity } from '@dfinity/identity';
import { sha256 } from '@noble/hashes/sha256';

const [url, ledgerText, seedHex, toText] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exit(1); };
const identity = Ed25519KeyIdentity.generate(Uint8Array.from(Buffer.from(seedHex, 'hex')));
const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
const canisterId = Principal.fromText(ledgerText);

const idlFactory = ({ IDL }) => {
  const Account = IDL.Record({ owner: IDL.Principal, subaccount: IDL.Opt(IDL.Vec(IDL.Nat8)) });
  const TransferArg = IDL.Record({
    from_subaccount: IDL.Opt(IDL.Vec(IDL.Nat8)), to: Account, amount: IDL.Nat, fee: IDL.Opt(IDL.Nat),
    memo: IDL.Opt(IDL.Vec(IDL.Nat8)), created_at_time: IDL.Opt(IDL.Nat64),
  });
  const TransferError = IDL.Variant({
    BadFee: IDL.Record({ expected_fee: IDL.Nat }), BadBurn: IDL.Record({ min_burn_amount: IDL.Nat }),
    InsufficientFunds: IDL.Record({ balance: IDL.Nat }), TooOld: IDL.Null,
    CreatedInFuture: IDL.Record({ ledger_time: IDL.Nat64 }), Duplicate: IDL.Record({ duplicate_of: IDL.Nat }),
    TemporarilyUnavailable: IDL.Null, GenericError: IDL.Record({ error_code: IDL.Nat, message: IDL.Text }),
  });
  const Value = IDL.Rec();
  Value.fill(IDL.Variant({
    Blob: IDL.Vec(IDL.Nat8), Text: IDL.Text, Nat: IDL.Nat, Int: IDL.Int,
    Array: IDL.Vec(Value), Map: IDL.Vec(IDL.Tuple(IDL.Text, Value)),
  }));
  const GetBlocksArgs = IDL.Vec(IDL.Record({ start: IDL.Nat, length: IDL.Nat }));
  const GetBlocksResult = IDL.Rec();
  GetBlocksResult.fill(IDL.Record({
    log_length: IDL.Nat,
    blocks: IDL.Vec(IDL.Record({ id: IDL.Nat, block: Value })),
    archived_blocks: IDL.Vec(IDL.Record({ args: GetBlocksArgs, callback: IDL.Func([GetBlocksArgs], [GetBlocksResult], ['query']) })),
  }));
  return IDL.Service({
    icrc3_get_blocks: IDL.Func([GetBlocksArgs], [GetBlocksResult], ['query']),
    icrc1_fee: IDL.Func([], [IDL.Nat], ['query']),
    icrc1_balance_of: IDL.Func([Account], [IDL.Nat], ['query']),
    icrc1_transfer: IDL.Func([TransferArg], [IDL.Variant({ Ok: IDL.Nat, Err: TransferError })], []),
    icrc3_get_tip_certificate: IDL.Func([], [IDL.Opt(IDL.Record({ certificate: IDL.Vec(IDL.Nat8), hash_tree: IDL.Vec(IDL.Nat8) }))], ['query']),
  });
};
const ledger = Actor.createActor(idlFactory, { agent, canisterId });

const fee = await ledger.icrc1_fee();
if (fee !== 10000n) fail(`fee ${fee}`);
const me = { owner: identity.getPrincipal(), subaccount: [] };
const before = await ledger.icrc1_balance_of(me);
if (before < 100000n) fail(`balance ${before} (the test mints 1000000)`);

const arg = {
  from_subaccount: [], to: { owner: Principal.fromText(toText), subaccount: [] }, amount: 5000n, fee: [],
  memo: [new Uint8Array(32).fill(7)], created_at_time: [BigInt(Date.now()) * 1000000n],
};
const first = await ledger.icrc1_transfer(arg);
if (!('Ok' in first)) fail(`transfer ${JSON.stringify(first, (k, v) => typeof v === 'bigint' ? v.toString() : v)}`);
const replay = await ledger.icrc1_transfer(arg);
if (!('Err' in replay) || !('Duplicate' in replay.Err) || replay.Err.Duplicate.duplicate_of !== first.Ok) fail('replay is not Duplicate of the first block');
const over = await ledger.icrc1_transfer({ ...arg, amount: 10n ** 15n, created_at_time: [] });
if (!('Err' in over) || !('InsufficientFunds' in over.Err)) fail('overspend is not InsufficientFunds');

const [tip] = await ledger.icrc3_get_tip_certificate();
if (!tip) fail('no tip certificate');
const cert = await Certificate.create({ certificate: new Uint8Array(tip.certificate), rootKey: agent.rootKey, canisterId });
const data = cert.lookup_path(['canister', canisterId.toUint8Array(), 'certified_data']);
if (data.status !== LookupPathStatus.Found) fail('certified_data not in the certificate');
const digest = await reconstruct(Cbor.decode(new Uint8Array(tip.hash_tree)));
if (Buffer.compare(Buffer.from(digest), Buffer.from(data.value)) !== 0) fail('certified_data differs from the tip hash tree');
// The tip block, fetched with icrc3_get_blocks, must hash (ICRC-3 value hash) to the certified
// last_block_hash.
const tree = Cbor.decode(new Uint8Array(tip.hash_tree));
const find = (label) => {
  const walk = (n) => {
    if (n[0] === 1) return walk(n[1]) ?? walk(n[2]);
    if (n[0] === 2 && Buffer.from(n[1]).toString() === label) return n[2][1];
    return undefined;
  };
  return walk(tree);
};
const lastHash = find('last_block_hash');
const lastIndexBytes = find('last_block_index');
let lastIndex = 0n;
for (let i = lastIndexBytes.length - 1; i >= 0; i--) lastIndex = (lastIndex << 7n) | BigInt(lastIndexBytes[i] & 0x7f);
const page = await ledger.icrc3_get_blocks([{ start: lastIndex, length: 1n }]);
if (page.blocks.length !== 1 || page.blocks[0].id !== lastIndex) fail('icrc3_get_blocks did not return the tip block');
const concat = (parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; };
const uleb = (n) => { const out = []; do { let b = Number(n & 0x7fn); n >>= 7n; if (n > 0n) b |= 0x80; out.push(b); } while (n > 0n); return Uint8Array.from(out); };
const hashValue = (v) => {
  if ('Blob' in v) return sha256(Uint8Array.from(v.Blob));
  if ('Text' in v) return sha256(new TextEncoder().encode(v.Text));
  if ('Nat' in v) return sha256(uleb(v.Nat));
  if ('Array' in v) return sha256(concat(v.Array.map(hashValue)));
  if ('Map' in v) {
    const rows = v.Map.map(([k, x]) => concat([sha256(new TextEncoder().encode(k)), hashValue(x)]));
    rows.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return sha256(concat(rows));
  }
  fail('unexpected value arm ' + Object.keys(v));
};
if (Buffer.compare(Buffer.from(hashValue(page.blocks[0].block)), Buffer.from(lastHash)) !== 0) fail('tip block does not hash to last_block_hash');
console.log('ok');
